// The digit files of samples/ ("Try a sample", fine-tuning's MNIST digits), each checked before anyone reads it against
// the SHA-256 that samples/index.json gives (always fetched fresh: the one place their hashes come from), and asked for
// by that hash, so that no cache can hand out an old copy.

import { fetchBytes, fetchJson, verified, ModelFileError } from "./runtime/index.js";

const INDEX = new URL("../samples/index.json", import.meta.url);
let index = null;

/** The checked bytes of samples/<name>. */
export async function sampleFile(name) {
  index ??= fetchJson(INDEX, "samples/index.json");
  index.catch(() => { index = null; });
  const entry = (await index).files?.[name];
  if (!entry) throw new ModelFileError(`samples/index.json does not name ${name}`);
  const what = `samples/${name}`;
  return verified(await fetchBytes(new URL(`${name}?v=${entry.sha256}`, INDEX), { what }), entry.sha256, what, "samples/index.json");
}
