// What this copy of the site keeps in the visitor's browser is named by the site's own path, so that two copies on one
// origin never see each other's (every GitHub Pages project site of a user shares https://<user>.github.io, each under
// its own /<repository>/): the settings here (localStorage), the database (storage.js, IndexedDB) and the offline cache
// (models.js and sw.js, Cache Storage). theme.js, which must run before the first paint and so cannot import this,
// names the theme the same way.

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
