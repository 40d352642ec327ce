// Offline support. Installing caches the page and every model (the model files named by the content hashes in their
// metadata), so once this worker is active a second visit works with no network. The page registers this worker only
// after it has downloaded the models, and it puts each verified model file into this cache itself: installing finds
// them there and downloads none of them again. Same-origin GETs then go to the network first (a visitor online always
// gets the newest page and metadata) and fall back to the cache. A file asked for with ?v=<its SHA-256> never changes
// under its URL: it is served from the cache first, and only bytes whose hash is that v are ever stored or served from
// it (a bad response, say an error page from a proxy, is passed on for the page to refuse but never kept; a cached copy
// that no longer matches is dropped and fetched again). A re-exported model has new URLs, and its old copies are
// dropped as the new ones are stored.
const CACHE = "mnist-app-v1";   // OFFLINE_CACHE in js/models.js (a test keeps the two equal)
const SHELL = ["./", "favicon.svg", "css/app.css", "js/theme.js", "js/main.js", "js/drawing.js", "js/preprocess.js", "js/models.js", "js/chart.js",
               "js/inside.js", "js/report.js", "js/teach.js", "js/storage.js", "js/finetune.js", "js/trainer.js", "js/fit.js", "js/fit_worker.js",
               "js/dataset.js", "js/plot.js", "js/model_runtime.js", "js/dom.js", "js/verify.js"];
// the digits "Try a sample" draws, by the hash samples/index.json gives (as the page asks for them)
const SAMPLES = ["mnist_test_samples.bin"];
// only for fine-tuning (1.2 MB) and for training (MNIST, 11 MB, and the trainable models): not precached, so a visitor who
// never uses them never downloads them; stored when first fetched
const LATER = ["samples/finetune.bin", "samples/mnist/"];
const MODELS = ["mnist_mlp", "mnist_convnet"];   // as in js/models.js (a test keeps the two lists equal)

// the exporter's names for a model's files (metadata "files") -> the files' suffixes
const FILE_SUFFIX = { module: "js", weights: "safetensors", wasm: "wasm", extras_wgsl: "extras.json", extras_wasm: "extras.wasm", report: "report.json" };

const versionOf = (url) => new URL(url, self.location.href).searchParams.get("v");
const isVersioned = (url) => versionOf(url) !== null;

/** Whether `response` holds the bytes its URL's ?v= names (a service worker runs only in a secure context, where
 *  crypto.subtle exists; without it nothing is trusted). */
async function matches(url, response) {
  if (!response?.ok || !globalThis.crypto?.subtle) return false;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await response.clone().arrayBuffer()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") === versionOf(url);
}

async function dropOtherVersions(cache, url) {
  for (const old of await cache.keys()) {
    const o = new URL(old.url);
    if (o.pathname === url.pathname && o.search !== url.search) await cache.delete(old);
  }
}

async function store(cache, request, response) {
  const url = new URL(request.url, self.location.href);
  if (isVersioned(url)) {
    if (!(await matches(url, response))) return;   // never keep bytes that are not what the URL names
    await dropOtherVersions(cache, url);
  }
  await cache.put(request, response);
}

/** The cached copy of a versioned file if it still holds what its URL names; a copy that does not is dropped. */
async function verifiedHit(cache, request) {
  const hit = await cache.match(request);
  if (!hit) return null;
  if (await matches(request.url ?? request, hit)) return hit;
  await cache.delete(request);
  return null;
}

// A versioned file never changes under its URL: one already cached (by the page) is kept. Otherwise the HTTP cache may
// answer: installing runs right after a visit, so what it holds is what the page itself just loaded.
async function fetchAndStore(cache, url) {
  if (isVersioned(url)) {
    const hit = await verifiedHit(cache, new Request(url));
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
  const samples = (async () => {
    const index = await (await fetchAndStore(cache, "samples/index.json")).json();
    await Promise.all(SAMPLES.map((name) => fetchAndStore(cache, `samples/${name}?v=${index.files[name].sha256}`)));
  })();
  const results = await Promise.allSettled([...SHELL.map((url) => fetchAndStore(cache, url)), ...models, samples]);
  for (const r of results) if (r.status === "rejected") console.warn("offline cache:", r.reason?.message ?? r.reason);
}

self.addEventListener("install", (event) => event.waitUntil(precache().then(() => self.skipWaiting())));
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function respond(request) {
  const cache = await caches.open(CACHE);
  if (isVersioned(request.url)) {
    const hit = await verifiedHit(cache, request);
    if (hit) return hit;
  }
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") await store(cache, request, response.clone());
    return response;
  } catch (error) {
    const hit = isVersioned(request.url) ? await verifiedHit(cache, request) : await cache.match(request);
    if (hit) return hit;
    throw error;
  }
}

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET" || new URL(event.request.url).origin !== self.location.origin) return;
  event.respondWith(respond(event.request));
});
