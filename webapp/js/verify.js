// Verify, then use: the page runs, decodes or renders no byte it has not checked against a SHA-256 from a file it fetched
// fresh (a model's metadata, samples/index.json). Every check fails closed: one that cannot run refuses. On the first
// visit's path (models.js imports the selected model with it), so it imports nothing else until a check needs hashing.

/** A file that is not the one its metadata names (by name, as the runtime's own ModelFileError: the page tells them apart
 *  from network errors by it). */
export class ModelFileError extends Error {
  constructor(message) { super(message); this.name = "ModelFileError"; }
}

const fileOf = (url) => new URL(url, location.href).pathname.split("/").pop();
const isSha256 = (hex) => typeof hex === "string" && /^[0-9a-f]{64}$/.test(hex);
const base64OfHex = (hex) => btoa(String.fromCharCode(...hex.match(/../g).map((h) => parseInt(h, 16))));

/** Import the ES module at `url` only if its bytes hash to `sha256` (hex): a <link rel="modulepreload"> with Subresource
 *  Integrity fetches it into the page's module map, which the import() that follows then runs, so the code that runs is
 *  the code that was checked. A browser without modulepreload could not check it first, and is refused. */
export async function importVerified(url, sha256) {
  const file = fileOf(url);
  if (!isSha256(sha256)) throw new ModelFileError(`${file}: its metadata gives no SHA-256 to check it against`);
  const link = document.createElement("link");
  if (!link.relList?.supports?.("modulepreload")) throw new Error(`${file}: this browser cannot check a module before it runs (no modulepreload)`);
  Object.assign(link, { rel: "modulepreload", href: url, integrity: `sha256-${base64OfHex(sha256)}`, crossOrigin: "anonymous" });
  try {
    await new Promise((resolve, reject) => {
      link.onload = resolve;
      link.onerror = () => reject(new ModelFileError(`${file} could not be downloaded, or is not the file its metadata names (sha256 mismatch)`));
      document.head.append(link);
    });
  } finally { link.remove(); }
  return import(url);
}

/** The bytes at `url` once they hash to `sha256`; `what` names the file in errors. */
export async function fetchVerified(url, sha256, what = fileOf(url)) {
  if (!isSha256(sha256)) throw new ModelFileError(`${what}: no SHA-256 to check it against`);
  let response;
  try { response = await fetch(url); }
  catch (e) { throw new Error(`could not download ${what} (${e.message})`); }
  if (!response.ok) throw new Error(`could not download ${what} (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer()), { sha256Hex } = await import("./model_runtime.js");
  if ((await sha256Hex(bytes)) !== sha256) throw new ModelFileError(`${what} is not the file its index names (sha256 mismatch)`);
  return bytes;
}

/** An index of files and their SHA-256 (samples/index.json, samples/mnist/index.json), always fetched fresh: the one
 *  place their hashes come from. `what` names it in errors. */
export async function fetchIndex(url, what) {
  let response;
  try { response = await fetch(url, { cache: "no-cache" }); }
  catch (e) { throw new Error(`could not download ${what} (${e.message})`); }
  if (!response.ok) throw new Error(`could not download ${what} (HTTP ${response.status})`);
  try { return await response.json(); }
  catch { throw new ModelFileError(`${what} is not JSON (a broken download, or not this app's file)`); }
}

/** A digit file of samples/, checked against samples/index.json. */
let samplesIndex = null;
export function sampleFile(name) {
  samplesIndex ??= fetchIndex(new URL("../samples/index.json", import.meta.url), "samples/index.json");
  samplesIndex.catch(() => { samplesIndex = null; });
  return samplesIndex.then((index) => {
    const entry = index.files?.[name];
    if (!entry) throw new ModelFileError(`samples/index.json does not name ${name}`);
    return fetchVerified(new URL(`../samples/${name}?v=${entry.sha256}`, import.meta.url), entry.sha256, `samples/${name}`);
  });
}
