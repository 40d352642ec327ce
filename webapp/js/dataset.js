// All of MNIST for training in the page, loaded when the trainer opens: samples/mnist/index.json (always fetched fresh)
// lists the files, gzip (GitHub Pages serves them as they are), each asked for by its content hash. Every file is
// downloaded once with progress, checked against its SHA-256 before anything reads it, inflated with
// DecompressionStream, put in the offline cache, and handed over as soon as it is in: training starts on the first file
// while the others arrive. A download that breaks off is tried again (three times), then reported with the file's name.

import { stash } from "./settings.js";
import { fetchBytes, fetchJson, verified, DownloadError } from "./runtime/index.js";
import { Digits, SIZE } from "./fit.js";

const INDEX = new URL("../samples/mnist/index.json", import.meta.url);
const TRIES = 3;

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Fetch, check and inflate one file of the index; `onBytes(n)` hears each chunk that arrives. */
async function fetchFile(entry, onBytes) {
  const url = new URL(`${entry.file}?v=${entry.sha256}`, INDEX);   // the full hash: the service worker keeps only bytes that hash to v
  for (let attempt = 1; ; attempt++) {
    let received = 0;
    try {
      const bytes = await fetchBytes(url, { what: entry.file, expectedBytes: entry.bytes, onBytes: (n) => { received += n; onBytes(n); } });
      await verified(bytes, entry.sha256, entry.file, "samples/mnist/index.json");
      stash(url, bytes, "application/gzip");
      const raw = await inflate(bytes);
      if (raw.length !== entry.count * (SIZE + 1)) throw new Error(`${entry.file} holds ${raw.length} bytes, not ${entry.count} digits`);
      return { labels: raw.subarray(0, entry.count), images: raw.subarray(entry.count) };
    } catch (e) {
      onBytes(-received);   // its bytes will come again
      if (attempt >= TRIES || !(e instanceof DownloadError)) throw e;   // a bad file stays bad
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

/** Start loading; returns { train: Digits, test: Digits, total, loaded(), done: promise }. `onChange({ file, split,
 *  loaded, total })` hears progress and each file's arrival; `done` rejects with the first file that failed. */
export function loadDataset(onChange) {
  const data = { train: new Digits(), test: new Digits(), total: 0, received: 0 };
  data.done = (async () => {
    const index = await fetchJson(INDEX, "samples/mnist/index.json");
    data.total = index.files.reduce((sum, f) => sum + f.bytes, 0);
    onChange({ loaded: 0, total: data.total });
    // one file at a time, in the index's order: the first training file (training can start), the test set, the rest
    for (const entry of index.files) {
      const { labels, images } = await fetchFile(entry, (n) => { data.received += n; onChange({ loaded: data.received, total: data.total }); });
      data[entry.split].add(labels, images);
      onChange({ file: entry.file, split: entry.split, loaded: data.received, total: data.total });
    }
  })();
  return data;
}
