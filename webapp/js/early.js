// Where the site's files are (the manifest, each model's folder), and the first answer's files, asked for as soon as
// the page can know them: the manifest (preloaded by index.html) names the model the page starts with, and its plan,
// weights and the WebAssembly build this browser runs first are preloaded at once, beside the page's other modules,
// instead of after them (index.html runs this module on its own, as soon as it arrives). A preload only warms the
// browser's cache: the runtime downloads every file through it as before, and verifies every byte.

import { fetchJson, fileUrl } from "./runtime/fetch.js";
import { wasmModule } from "./runtime/plan.js";
import { wasmSettings } from "./wasm_settings.js";

export const MANIFEST = new URL("../models.json", import.meta.url);

/** The folder of a model of the manifest. */
export const folderOf = (name) => new URL(`../${name}/`, import.meta.url);

/** The manifest's well-formed entries, by role: { predict, train } ([{ name, label, meta }]). */
export function listed(manifest) {
  const models = Array.isArray(manifest?.models) ? manifest.models.filter((m) => typeof m?.name === "string" && m.meta?.name === m.name) : [];
  return { predict: models.filter((m) => m.role === "predict"), train: models.filter((m) => m.role === "train") };
}

/** The model the page starts with: the most accurate of those that draw (`predict`: the manifest's entries). */
export const firstModel = (predict) => predict.reduce((a, b) => (b.meta.test_accuracy > a.meta.test_accuracy ? b : a));

let manifest = fetchJson(MANIFEST, "models.json");

/** The manifest's JSON: the download this module started, once; a fresh one after that (a retry). */
export function fetchManifest() {
  const first = manifest;
  manifest = null;
  return first ?? fetchJson(MANIFEST, "models.json");
}

manifest.then((json) => {
  const first = firstModel(listed(json).predict);
  for (const key of ["plan", "weights", wasmModule(first.meta, wasmSettings()).file]) {
    const href = fileUrl(first.meta.files[key], folderOf(first.name)).href;
    document.head.append(Object.assign(document.createElement("link"), { rel: "preload", as: "fetch", crossOrigin: "anonymous", href }));
  }
}).catch(() => {});   // only a head start: the page reports a manifest it cannot read
