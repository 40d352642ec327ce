// What this copy of the site keeps in the visitor's browser is named by the site's own path, so that two copies on one
// origin never see each other's (every GitHub Pages project site of a user shares https://<user>.github.io, each under
// its own /<repository>/): the settings here (localStorage), the database (storage.js, IndexedDB) and the offline cache
// (here and sw.js, Cache Storage). index.html's inline script, which must run before the first paint and so cannot
// import this, names the theme the same way.

/** The site's path: "/" or "/<repository>/" (the folder that holds index.html). */
export const SITE = new URL("../", import.meta.url).pathname;

/** `name` as this site's: "<name>@<site path>". */
export const siteName = (name) => `${name}@${SITE}`;

/** The remembered value of setting `key`, if it is one of `allowed` (else, or with storage blocked, null). */
export function remembered(key, allowed) {
  try {
    const value = localStorage.getItem(siteName(key));
    return allowed.includes(value) ? value : null;
  } catch { return null; }
}

/** Remember `value` for setting `key`; with storage blocked it lasts for this visit only (returns false). */
export function remember(key, value) {
  try { localStorage.setItem(siteName(key), value); return true; }
  catch { return false; }
}

/** The service worker's cache (sw.js names it the same way; a test keeps them equal). */
export const OFFLINE_CACHE = siteName("mnist-app-v2");

/** Verified bytes into the offline cache at once, so that the service worker, when it installs, finds them there instead
 *  of downloading them a second time. */
export async function stash(url, bytes, type = "application/octet-stream") {
  try {
    const cache = await caches.open(OFFLINE_CACHE);
    await cache.put(url, new Response(bytes, { headers: { "Content-Type": type, "Content-Length": String(bytes.byteLength) } }));
  } catch { /* no Cache Storage (an insecure context, private mode): the service worker fetches what it needs */ }
}
