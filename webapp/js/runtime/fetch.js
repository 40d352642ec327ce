// Files from the network, and the hash check every one of them passes before it is used: the page's, its Workers' and
// Node's one way to download and verify. The metadata (or an index of files) is the root of trust: it is fetched fresh,
// never from a cache, and every other file is checked against the SHA-256 it gives.

import { sha256Hex } from "./sha256.js";

/** A model file that is truncated, corrupt or not the one the model was exported with: no backend can run it. */
export class ModelFileError extends Error {
  constructor(message) { super(message); this.name = "ModelFileError"; }
}

/** A file that could not be downloaded (no network, an HTTP error, a body that broke off): trying again may work. */
export class DownloadError extends Error {
  constructor(message) { super(message); this.name = "DownloadError"; }
}

export const message = (e) => (e instanceof Error ? e.message : String(e));
export const fileName = (url) => decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split("/").pop());

/** The bytes at `url`, every chunk reported to `onBytes(n)` as it arrives; any failure is a DownloadError naming the
 *  file (`what`), and so is a body shorter or longer than `expectedBytes`. `cache`: fetch's cache mode. */
export async function fetchBytes(url, { what = fileName(url), expectedBytes, onBytes, cache } = {}) {
  let response;
  try { response = await fetch(url, cache ? { cache } : undefined); }
  catch (e) { throw new DownloadError(`could not download ${what} (${message(e)})`); }
  if (!response.ok) throw new DownloadError(`could not download ${what} (HTTP ${response.status})`);
  const chunks = [];
  let received = 0;
  try {
    const reader = response.body.getReader();
    for (let chunk; !(chunk = await reader.read()).done;) {
      chunks.push(chunk.value);
      received += chunk.value.byteLength;
      onBytes?.(chunk.value.byteLength);
    }
  } catch (e) { throw new DownloadError(`the download of ${what} broke off after ${received} bytes (${message(e)})`); }
  if (expectedBytes !== undefined && received !== expectedBytes) {
    throw new DownloadError(`the download of ${what} is incomplete (${received} of ${expectedBytes} bytes)`);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  return bytes;
}

/** Where a model's file (`entry`: its metadata's { name, sha256 }) is in `folder`: versioned by its hash, so that a
 *  cached copy of another version is never asked for. */
export const fileUrl = (entry, folder) => new URL(`${encodeURIComponent(entry.name)}?v=${entry.sha256}`, folder);

/** `bytes` as JSON, or a ModelFileError naming `what`. */
export function parseJson(bytes, what) {
  try { return JSON.parse(new TextDecoder().decode(bytes)); }
  catch { throw new ModelFileError(`${what} is not JSON (a broken download, or not this app's file)`); }
}

/** JSON at `url`, always fetched fresh (an index of files or a model's metadata: where hashes come from). */
export async function fetchJson(url, what = fileName(url)) {
  return parseJson(await fetchBytes(url, { what, cache: "no-cache" }), what);
}

const checks = new WeakMap();   // bytes -> { sha256, promise of its check }: bytes given to both backends are hashed once

/** `bytes` once they hash to `sha256` (hex), which `source` gives; else a ModelFileError naming `what`. A check that
 *  cannot run refuses. */
export async function verified(bytes, sha256, what, source = "its metadata") {
  if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw new ModelFileError(`${what}: no SHA-256 to check it against`);
  let check = checks.get(bytes);
  if (check?.sha256 !== sha256) {
    check = { sha256, promise: sha256Hex(bytes).then((hash) => hash === sha256) };
    checks.set(bytes, check);
  }
  if (!(await check.promise)) throw new ModelFileError(`${what} is not the file ${source} names (sha256 mismatch)`);
  return bytes;
}
