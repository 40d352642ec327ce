// Offline support. Installing caches the page, so that once this worker is active a second visit works with no network.
// What to cache is read, not listed: the page's files by following index.html's links and each module's imports (so a new
// module is cached without anyone remembering to add it here), and the site's manifest (models.json). The models' files
// are the page's to put here: it registers this worker only after it has downloaded its models, and stores the verified
// files it runs, and the WebAssembly build the next visit runs, itself (the runtime's own choice: only the builds this
// browser runs, never every build of every model). Whatever else the page fetches later goes in as it passes.
//
// Same-origin GETs then go to the network first (a visitor online always gets the newest page and manifest) and fall
// back to the cache. A file asked for with ?v=<its SHA-256> never changes under its URL: it is served from the cache
// first, and only bytes whose hash is that v are ever stored or served from it (a bad response, say an error page from a
// proxy, is passed on for the page to refuse but never kept; a cached copy that no longer matches is dropped and fetched
// again). A re-exported model has new URLs, and its old copies are dropped as the new ones are stored.
//
// One origin, many sites: the cache is named by this site's path (its scope), as every setting and database of the page
// is (js/settings.js), and activating deletes only this site's caches of other versions.
//
// Cross-origin isolation: a page may share memory between Workers (WebAssembly on several threads) only when it is
// cross-origin isolated, which takes two response headers GitHub Pages cannot send. This worker adds them to everything it
// serves (the page, its modules, its Workers' scripts; all of it is same-origin, so requiring that costs nothing), so that
// every visit after the first is isolated. The first visit is not, and runs on one thread: it never reloads itself.
const SITE = new URL("./", self.location.href).pathname;
const VERSION = "mnist-app-v2";   // the cache's format: a new one starts empty and the old one is deleted on activate
const CACHE = `${VERSION}@${SITE}`;   // OFFLINE_CACHE in js/settings.js (siteName("mnist-app-v2"): a test keeps them equal)
// the digits "Try a sample" draws, by the hash samples/index.json gives (as the page asks for them)
const SAMPLES = ["mnist_test_samples.bin"];
// only for fine-tuning (1.2 MB) and for training (MNIST, 11 MB, and the trainable models): not precached, so a visitor who
// never uses them never downloads them; stored when first fetched
const LATER = ["samples/finetune.bin", "samples/mnist/"];

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

/** The page's own files: index.html, what it links (its style, icon and scripts), and every module those import,
 *  statically, on demand or as a worker ("./x.js" or "./folder/x.js", relative to the importing module). */
async function shell(cache) {
  const found = new Set(["./"]);
  // each file at once, and what it names as soon as it is in: the crawl takes as many round trips as the import chain is deep
  const visit = async (url) => {
    const response = await fetchAndStore(cache, url);
    if (url !== "./" && !url.endsWith(".js")) return;
    const text = await response.text();
    const links = url === "./" ? [...text.matchAll(/(?:href|src)="((?![#/]|[a-z]+:)[^"]+)"/g)].map((m) => m[1])
      : [...text.matchAll(/(?:from|import\(|new URL\()\s*"\.\/([\w/-]+\.js)"/g)].map((m) => url.replace(/[^/]*$/, "") + m[1]);
    await Promise.all([...new Set(links)].filter((link) => !found.has(link)).map((link) => { found.add(link); return visit(link); }));
  };
  await visit("./");
}


async function samples(cache) {
  const index = await (await fetchAndStore(cache, "samples/index.json")).json();
  await Promise.all(SAMPLES.map((name) => fetchAndStore(cache, `samples/${name}?v=${index.files[name].sha256}`)));
}

// A part that cannot be fetched now (or a missing file) is skipped, not fatal: the rest still works offline.
async function precache() {
  const cache = await caches.open(CACHE);
  const results = await Promise.allSettled([shell(cache), fetchAndStore(cache, "models.json"), samples(cache)]);
  for (const r of results) if (r.status === "rejected") console.warn("offline cache:", r.reason?.message ?? r.reason);
}

/** This site's caches of other versions (and the one every copy shared before caches were named by site). */
async function dropOldCaches() {
  for (const name of await caches.keys()) if (name !== CACHE && (name.endsWith(`@${SITE}`) || name === "mnist-app-v1")) await caches.delete(name);
}

// A new version of this worker takes over once no page of the site is open (the first one at once, and it claims the page
// that installed it). It does not skip waiting: to activate a new worker Chromium stops the one in use, and a request
// arriving meanwhile starts that one again and leaves the activation undone for good; with skipWaiting() the page's own
// requests right after an update did that, and its next reload got no load event (tests/test_threads.py reproduces it: a
// page fetching while its worker updates). Waiting, a page is served as before (its own files from the network first,
// the models by their hash), and sw.js changes only when this file does.
self.addEventListener("install", (event) => event.waitUntil(precache()));
self.addEventListener("activate", (event) => event.waitUntil(dropOldCaches().then(() => self.clients.claim())));

const ISOLATION = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                    "Cross-Origin-Resource-Policy": "same-origin" };

/** `response` with the isolation headers (a copy: a fetched or cached response's own headers are immutable). */
function isolated(response) {
  if (response.type === "opaque" || response.type === "opaqueredirect" || response.status === 0) return response;
  const headers = new Headers(response.headers);
  for (const [k, v] of Object.entries(ISOLATION)) headers.set(k, v);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

async function fromCacheOrNetwork(request) {
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
    // an unversioned file's query does not change its bytes (the page's address may carry one: ?threads=N)
    const hit = isVersioned(request.url) ? await verifiedHit(cache, request) : await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    throw error;
  }
}

const respond = (request) => fromCacheOrNetwork(request).then(isolated);

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET" || new URL(event.request.url).origin !== self.location.origin) return;
  event.respondWith(respond(event.request));
});
