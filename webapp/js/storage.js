// What the page keeps for the visitor in IndexedDB: their training examples, each model's fine-tuned weights, and the
// models they trained from scratch, in a database named by the site's path (settings.js). Loaded only once the visitor
// teaches or trains a model, or when a previous visit left something here (teach.js and the trainer keep flags among the
// settings, so that a first visit never opens the database).

import { siteName, remember, remembered } from "./settings.js";

const DB = siteName("mnist-app"), VERSION = 2;   // 2: the "trained" store
let opened = null;

function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result, has = (name) => db.objectStoreNames.contains(name);
      if (!has("examples")) db.createObjectStore("examples", { autoIncrement: true });
      if (!has("weights")) db.createObjectStore("weights");
      if (!has("trained")) db.createObjectStore("trained");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB is not available"));
  });
  opened.catch(() => { opened = null; });
  return opened;
}

async function transaction(store, mode, act) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode), request = act(tx.objectStore(store));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
  });
}

export const storage = {
  get: (store, key) => transaction(store, "readonly", (s) => s.get(key)),
  put: (store, key, value) => transaction(store, "readwrite", (s) => (key === undefined ? s.put(value) : s.put(value, key))),
  delete: (store, key) => transaction(store, "readwrite", (s) => s.delete(key)),
  all: (store) => transaction(store, "readonly", (s) => s.getAll()),
  clear: (store) => transaction(store, "readwrite", (s) => s.clear()),
};

/** Keep a model's fine-tuned weights ({ name: Float32Array }) and what they scored, for the export they were tuned from. */
export function keepTuned(meta, weights, summary) {
  const stored = Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, v.slice().buffer]));
  return storage.put("weights", meta.name, { base: meta.files.weights.sha256, weights: stored, summary });
}

/** A model's stored fine-tuned weights if they were tuned from exactly this export (else null). `shipped(name)` gives each
 *  trained tensor as shipped ({ data }), to check the stored ones against; a damaged entry is an error saying what is wrong. */
export async function tunedWeights(meta, trains, shipped) {
  const entry = await storage.get("weights", meta.name);
  if (!entry || entry.base !== meta.files.weights.sha256) return null;   // none, or tuned from an older export: no longer applies
  const weights = {};
  for (const name of trains) {
    const data = entry.weights?.[name], want = shipped(name).data.byteLength;
    if (!(data instanceof ArrayBuffer) || data.byteLength !== want) throw new Error(`the stored fine-tuned weights are damaged (${name})`);
    const values = new Float32Array(data);
    if (!values.every(Number.isFinite)) throw new Error(`the stored fine-tuned weights are damaged (${name} is not finite)`);
    weights[name] = values;
  }
  return { weights, summary: entry.summary ?? null };
}

/** The visitor's examples: { label, image: Uint8Array(784) } each. */
export async function loadExamples() {
  const all = await storage.all("examples");
  return all.filter((e) => Number.isInteger(e?.label) && e.label >= 0 && e.label <= 9 && e.image instanceof Uint8Array && e.image.length === 784);
}
export const addExample = (example) => storage.put("examples", undefined, example);

const TRAINED_FLAG = "trained";   // a setting: a model trained here is kept (the trainer shows it when next opened)

/** Keep a model trained in the page: { name (the trainer model), label, weights: { name: Float32Array }, report, summary }. */
export async function keepTrained({ name, label, weights, report, summary }) {
  const { image, ...misread } = report.misread;   // the images are the test set's: found again by index
  await storage.put("trained", "last", { name, label, summary, report: { ...report, misread },
                                         weights: Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, v.slice().buffer])) });
  remember(TRAINED_FLAG, "1");   // blocked: the model is kept; the next visit just will not look for it first
}

/** The model last trained here, if its trainer model is among `names` and it is intact (else null). */
export async function keptTrained(names) {
  if (remembered(TRAINED_FLAG, ["1"]) === null) return null;   // none kept: the database need not open
  const entry = await storage.get("trained", "last");
  if (!entry || !names.includes(entry.name)) return null;
  const weights = {};
  for (const [k, v] of Object.entries(entry.weights ?? {})) {
    if (!(v instanceof ArrayBuffer)) throw new Error(`the kept model is damaged (${k})`);
    weights[k] = new Float32Array(v);
    if (!weights[k].every(Number.isFinite)) throw new Error(`the kept model is damaged (${k} is not finite)`);
  }
  return { ...entry, weights };
}
