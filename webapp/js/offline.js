// Offline: the service worker (sw.js) caches the page and the models. It is registered once every model has been
// downloaded (and put in its cache by the page), so that it never downloads a model a second time; body[data-offline]
// says when a second visit can go without the network ("installing", "ready", "failed").

export async function enableOffline() {
  if (!("serviceWorker" in navigator) || document.body.dataset.offline) return;
  document.body.dataset.offline = "installing";
  try {
    await navigator.serviceWorker.register(new URL("../sw.js", import.meta.url), { scope: new URL("../", import.meta.url).pathname });
    await navigator.serviceWorker.ready;
    document.body.dataset.offline = "ready";
  } catch (e) {
    document.body.dataset.offline = "failed";   // e.g. offline now with sw.js unreachable: a worker already installed keeps serving
    console.warn("offline support:", e);
  }
}
