// Offline support. Same-origin GETs go to the network first (so a visitor online always gets the newest page and
// metadata) and fall back to the cache when it is unreachable. Files asked for with ?v=<content hash> (the models'
// modules, weights and WebAssembly) never change under their URL, so a cached copy is served first; when a model is
// re-exported its URLs change, and the old copies are dropped as the new ones are stored.
const CACHE = "mnist-app-v1";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

const isVersioned = (url) => new URL(url).searchParams.has("v");

async function store(cache, request, response) {
  const url = new URL(request.url ?? request);
  if (isVersioned(url)) {
    for (const old of await cache.keys()) {
      const o = new URL(old.url);
      if (o.pathname === url.pathname && o.search !== url.search) await cache.delete(old);
    }
  }
  await cache.put(request, response);
}

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

// The page sends what it loaded before this worker controlled it; the reply says when all of it is stored.
self.addEventListener("message", (event) => {
  const urls = event.data?.cache;
  if (!Array.isArray(urls)) return;
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    let ok = true;
    for (const url of new Set(urls)) {
      if (new URL(url).origin !== self.location.origin || await cache.match(url)) continue;
      try {
        const response = await fetch(url);
        if (response.ok) await store(cache, url, response);
        else ok = false;
      } catch { ok = false; }
    }
    event.ports[0]?.postMessage({ ok });
  })());
});
