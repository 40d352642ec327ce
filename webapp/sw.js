// Offline support. Installing caches the page and every model (the model files named by the content hashes in their
// metadata), so once this worker is active a second visit works with no network. The page registers this worker only
// after it has downloaded the models, and it puts each verified model file into this cache itself: installing finds
// them there and downloads none of them again. Same-origin GETs then go to the
// network first (a visitor online always gets the newest page and metadata) and fall back to the cache. Files asked for
// with ?v=<content hash> never change under their URL, so a cached copy is served first; a re-exported model has new
// URLs, and its old copies are dropped as the new ones are stored.
const CACHE = "mnist-app-v1";   // OFFLINE_CACHE in js/models.js (a test keeps the two equal)
const SHELL = ["./", "css/app.css", "js/main.js", "js/drawing.js", "js/preprocess.js", "js/models.js", "js/chart.js", "js/inside.js", "js/report.js",
               "js/teach.js", "js/storage.js", "js/finetune.js", "js/trainer.js", "js/fit.js", "js/fit_worker.js", "js/dataset.js", "js/plot.js",
               "js/model_runtime.js", "js/dom.js", "samples/mnist_test_samples.bin"];
// only for fine-tuning (1.2 MB) and for training (MNIST, 11 MB, and the trainable models): not precached, so a visitor who
// never uses them never downloads them; stored when first fetched
const LATER = ["samples/finetune.bin", "samples/mnist/"];
const MODELS = ["mnist_mlp", "mnist_convnet"];   // as in js/models.js (a test keeps the two lists equal)

// the exporter's names for a model's files (metadata "files") -> the files' suffixes
const FILE_SUFFIX = { module: "js", weights: "safetensors", wasm: "wasm", extras_module: "extras.js", extras_wasm: "extras.wasm", report: "report.json" };

const isVersioned = (url) => new URL(url, self.location.href).searchParams.has("v");

async function dropOtherVersions(cache, url) {
  for (const old of await cache.keys()) {
    const o = new URL(old.url);
    if (o.pathname === url.pathname && o.search !== url.search) await cache.delete(old);
  }
}

async function store(cache, request, response) {
  const url = new URL(request.url, self.location.href);
  if (isVersioned(url)) await dropOtherVersions(cache, url);
  await cache.put(request, response);
}

// A versioned file never changes under its URL: one already cached (by the page) is kept. Otherwise the HTTP cache may
// answer: installing runs right after a visit, so what it holds is what the page itself just loaded.
async function fetchAndStore(cache, url) {
  if (isVersioned(url)) {
    const hit = await cache.match(url);
    if (hit) { await dropOtherVersions(cache, new URL(url, self.location.href)); return hit; }
  }
  const response = await fetch(new Request(url));
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  await store(cache, new Request(url), response.clone());
  return response;
}

// A model that cannot be fetched now (or a missing file) is skipped, not fatal: the rest still works offline.
async function precache() {
  const cache = await caches.open(CACHE);
  const models = MODELS.map(async (name) => {
    const meta = await (await fetchAndStore(cache, `${name}/${name}.json`)).json();
    await Promise.all(Object.entries(meta.files).map(([key, hash]) => fetchAndStore(cache, `${name}/${name}.${FILE_SUFFIX[key]}?v=${hash}`)));
  });
  const results = await Promise.allSettled([...SHELL.map((url) => fetchAndStore(cache, url)), ...models]);
  for (const r of results) if (r.status === "rejected") console.warn("offline cache:", r.reason?.message ?? r.reason);
}

self.addEventListener("install", (event) => event.waitUntil(precache().then(() => self.skipWaiting())));
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function respond(request) {
  const cache = await caches.open(CACHE);
  if (isVersioned(request.url)) {
    const hit = await cache.match(request);
    if (hit) return hit;
  }
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") await store(cache, request, response.clone());
    return response;
  } catch (error) {
    const hit = await cache.match(request);
    if (hit) return hit;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET" || new URL(event.request.url).origin !== self.location.origin) return;
  event.respondWith(respond(event.request));
});
