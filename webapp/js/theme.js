// Before the first paint (a classic script in <head>, not a module, so it runs at once): the saved colour scheme, else
// the system's, so that a dark-mode visitor never sees a white flash. main.js owns the toggle; the setting is named by
// the site's path, as settings.js names every setting ("theme@/<repository>/").
try {
  const saved = localStorage.getItem(`theme@${new URL("../", document.currentScript.src).pathname}`);
  document.documentElement.classList.toggle("dark", (saved ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light")) === "dark");
} catch { /* storage blocked: the system's scheme, through the CSS */ }
