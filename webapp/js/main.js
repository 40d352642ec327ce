// Wiring: drawing -> preprocessing -> model -> prediction, confidence, timing and chart. At most one prediction is in
// flight and at most one runs per animation frame; the newest drawing always wins.
import { DrawingPad, INK_SIZE } from "./drawing.js";
import { preprocess, fromMnist } from "./preprocess.js";
import { ProbabilityChart } from "./chart.js";
import { ModelRuntime, BACKEND_NAMES, median, readManifest, wasmSettings } from "./models.js";
import { Teacher } from "./teach.js";
import { sampleFile } from "./samples.js";
import { remember, remembered } from "./settings.js";
import { h, drawDigit } from "./dom.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), prediction: $("prediction"), confidence: $("confidence"), inference: $("inference-ms"),
  modelSelect: $("model-select"), modelInfo: $("model-info"), hint: $("pad-hint"), announce: $("announce"),
  pen: $("pen"), eraser: $("eraser"), brush: $("brush"), undo: $("undo"), clear: $("clear"), noWebGPU: $("no-webgpu"),
  sample: $("sample"), theme: $("theme"), backendSelect: $("backend-select"), backendInfo: $("backend-info"),
  downloads: $("downloads"), insideToggle: $("inside-toggle"), insidePanel: $("inside-panel"), reportToggle: $("report-toggle"),
  reportPanel: $("report-panel"), trainerToggle: $("trainer-toggle"),
};
const pad = new DrawingPad($("pad"));
const chart = new ProbabilityChart($("chart"), $("chart-labels"), $("chart-text"));
const runtime = new ModelRuntime(onRuntimeChange, { preference: remembered("backend", ["auto", "webgpu", "wasm"]) ?? "auto", isIdle,
                                                     prepare: (model, run) => teacher.prepare(model, run) });
let manifest = null;        // the promise of the site's models (models.json): { predict, train }
const teacher = new Teacher({ correct: $("correct"), count: $("examples-count"), start: $("finetune"), cancel: $("finetune-cancel"),
                              reset: $("reset-model"), forget: $("forget-examples"), status: $("finetune-status"),
                              curve: $("loss-curve"), progress: $("finetune-progress") },
                            { selected: () => selected(), currentImage: () => lastImage && Uint8Array.from(lastImage, (v) => Math.round(v * 255)), onChange: () => { updateReadiness(); schedule(); } });
const timings = new Map();   // "model/backend" -> recent inference times (ms), for the warm median
const PREVIEW_ONLY = { mean: 0, std: 1 };   // before a model's metadata arrives the preview needs the image, not the input

let dirty = true, urgent = false, busy = false, frameRequested = false, lastAnnounced = "";
let inputsOnTheirWay = 0;   // e.g. a sample being fetched: until it is drawn, no prediction has settled
let lastInput = -Infinity;  // when the drawing last changed
let lastImage = null;       // the drawing as the model reads it (784 values in [0, 1]), for teaching
let visitorChoseModel = false;

// background loading (other models, WebGPU, timing) waits for moments when no prediction runs or is about to
function isIdle() { return !busy && !(dirty && selected()?.run) && performance.now() - lastInput > 300; }

/** The model the menu names (none until the manifest is in). */
const selected = () => runtime.models.get(ui.modelSelect.value) ?? null;

function setStatus(text, tone = "info") {
  ui.status.textContent = text;
  ui.status.className = "rounded-full px-3 py-1 text-xs font-medium " + {
    info: "bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
    ok: "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
    error: "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300",
  }[tone];
}

function formatBytes(n) { return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`; }

function describeModels() {
  for (const option of ui.modelSelect.options) {
    const m = runtime.models.get(option.value);
    if (m) option.textContent = m.label + (m.error ? " (unavailable)" : "");
  }
  const m = selected();
  if (!m) return;
  if (m.error) ui.modelInfo.textContent = `Could not load this model: ${m.error}`;
  else {
    ui.modelInfo.textContent = teacher.describe(m) + (teacher.summary(m) ? "Shipped: " : "") +
      `${m.meta.test_accuracy.toFixed(2)}% on the 10 000 MNIST test digits · ` +
      `${m.meta.params.toLocaleString("en-US")} parameters · ${formatBytes(m.meta.files.weights.bytes)}`;
  }
  ui.modelInfo.classList.toggle("text-red-700", Boolean(m.error));
}

/** The backend in use, as the backend line says it: WebGPU and the adapter, or WebAssembly, its threads and whether it
 *  runs relaxed SIMD's fused multiply-add; `short` (the status, one line on a phone): only threads, where there are several. */
function backendLabel(m, short = false) {
  if (m.backend === "webgpu") return `WebGPU · ${runtime.adapterName}`;
  const wasm = m.backends.get("wasm")?.run.wasm;
  if (!wasm || (short && wasm.threads === 1)) return BACKEND_NAMES[m.backend];
  return `WebAssembly · ${wasm.threads} thread${wasm.threads === 1 ? "" : "s"}${wasm.fma && !short ? " · FMA" : ""}`;
}

/** Why WebAssembly runs on one thread, where it does. */
const oneThreadWhy = (m) => m.threadsLost ? `one thread: ${m.threadsLost}` : m.wasm.why ? `one thread: ${m.wasm.why}` : "";
const ms = (x) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;

// which backend runs the selected model, why, and how fast each one was when timed during warm-up
function describeBackends() {
  const m = selected();
  if (!m) return;
  for (const option of ui.backendSelect.options) {
    if (option.value === "auto") continue;
    const why = m.backendErrors.get(option.value);
    option.textContent = BACKEND_NAMES[option.value] + (why && runtime.settled ? " (unavailable)" : "");
  }
  if (!m.backend) { ui.backendInfo.textContent = m.error ? "" : "Starting…"; return; }
  const timed = [...m.backends.entries()].filter(([, b]) => Number.isFinite(b.ms)).map(([k, b]) => `${BACKEND_NAMES[k]} ${ms(b.ms)}`);
  const missing = [...m.backendErrors.entries()].map(([k, why]) => `${BACKEND_NAMES[k]} unavailable: ${why}`);
  const reason = runtime.preference === m.backend ? "your choice" : !runtime.settled ? "first ready" : m.backends.size > 1 ? "fastest here" : "the one available";
  const why = m.backend === "wasm" ? oneThreadWhy(m) : "";
  ui.backendInfo.textContent = `Running on ${backendLabel(m)} (${reason})` + (timed.length ? ` · warm run: ${timed.join(", ")}` : "") +
    (why ? ` · ${why}` : "") + (missing.length ? ` · ${missing.join("; ")}` : "");
  document.body.dataset.threads = String(m.backends.get("wasm")?.run.wasm?.threads ?? "");
}

function updateReadiness() {
  const m = selected();
  if (!m) return;
  const ready = Boolean(m.run);
  document.body.dataset.ready = String(ready);
  document.body.dataset.backend = m.backend ?? "";
  document.body.dataset.settled = String(runtime.settled);   // every backend tried, timed and chosen
  document.body.dataset.finetuned = String(ready && Boolean(teacher.summary(m)));
  teacher.refresh(m);
  if (m.error) { setStatus(`Error: ${m.name} failed to load`, "error"); clearAnswer(); }
  else if (ready) setStatus(`Ready · ${backendLabel(m, true)}`, "ok");
  else if (m.progress.active && m.progress.total) setStatus(`Downloading the ${m.label}… ${percent(m.progress)}%`);
  else setStatus("Loading models…");
  ui.noWebGPU.hidden = !runtime.gpuError;   // as soon as it is known, so that it moves the page early rather than mid-drawing
  describeModels();
  describeBackends();
  if (ready) schedule();
}

const percent = (p) => Math.min(100, Math.floor((100 * p.loaded) / p.total));

// One row per model whose files broke off (the error and a retry button), and one for the selected model while its files
// are on their way (a progress bar with bytes of total): the other models download out of sight, so that nothing moves
// the canvas and the answer on a phone's screen. Rows are made once and updated in place, at most once per frame.
let downloadsFrame = 0;
function showDownloads() {
  downloadsFrame ||= requestAnimationFrame(() => {
    downloadsFrame = 0;
    for (const m of runtime.models.values()) {
      let row = ui.downloads.querySelector(`[data-model="${m.name}"]`);
      const failed = Boolean(m.loadError && m.retryable), visible = (m.progress.active && m === selected()) || failed;
      if (!row && !visible) continue;
      if (!row) row = downloadRow(m);
      row.hidden = !visible;
      row.dataset.state = failed ? "error" : m.progress.active ? "loading" : "done";
      const bar = row.querySelector("progress"), text = row.querySelector("[data-text]");
      bar.max = m.progress.total || 1;
      bar.value = Math.min(m.progress.loaded, bar.max);
      text.textContent = failed ? m.loadError
        : `${formatBytes(m.progress.loaded)}${m.progress.total ? ` of ${formatBytes(m.progress.total)}` : ""}`;
      row.querySelector("button").hidden = !failed;
      bar.hidden = failed;
    }
    ui.downloads.hidden = !ui.downloads.querySelector("[data-model]:not([hidden])");
  });
}

function downloadRow(m) {
  const row = h("div", { class: "flex flex-wrap items-center gap-x-3 gap-y-1", dataset: { model: m.name, testid: `download-${m.name}` } },
    h("span", { class: "w-28 font-medium" }, `${m.label} model`),
    h("progress", { class: "h-2 w-40 accent-indigo-600", "aria-label": `Downloading the ${m.label} model` }),
    h("span", { "data-text": true, class: "tabular-nums" }),
    h("button", { type: "button", class: "tool min-h-0 py-1 text-xs", dataset: { testid: `retry-${m.name}` },
                  onclick: () => runtime.retry(m.name).catch((e) => setStatus(`Error: ${e.message ?? e}`, "error")) }, "Retry"));
  ui.downloads.append(row);
  return row;
}

function onRuntimeChange(event) {
  if (event.kind === "loading") { document.body.dataset.ready = "false"; setStatus("Loading models…"); }
  else if (event.kind === "fatal") setStatus(`Error: ${event.error.message ?? event.error}`, "error");
  else if (event.kind === "progress") {
    showDownloads();
    if (event.model === selected() && !event.model.run) updateReadiness();
  } else {
    // the default model failed while another loaded: switch to a working one rather than show nothing (never away from
    // a model the visitor picked: they see why it failed)
    const m = selected();
    if (m.error && !visitorChoseModel) {
      const working = [...runtime.models.values()].find((x) => x.run);
      if (working) ui.modelSelect.value = working.name;
    }
    updateReadiness();
    showDownloads();
    if (event.kind === "lost") setStatus(`GPU device lost, recovering… (${BACKEND_NAMES[selected().backend] ?? "nothing"} meanwhile)`, "error");
    if (event.kind === "downloaded") enableOffline();
    if (event.kind === "model" && event.model === selected()) { refreshInside().catch(panelError); refreshReport().catch(panelError); }
  }
}

// While a stroke is being drawn, at most one prediction per animation frame; once the drawing is final (pointer up,
// clear, undo, a sample) its prediction starts at once instead of waiting for the next frame.
function schedule(event) {
  dirty = true;
  urgent ||= event?.detail?.final === true;
  document.body.dataset.busy = "true";
  if (urgent && !busy) queueMicrotask(tick);
  else if (!frameRequested) { frameRequested = true; requestAnimationFrame(tick); }
}

async function tick() {
  frameRequested = false;
  if (busy || !dirty) return;
  dirty = false;
  urgent = false;
  busy = true;
  try { await predict(); }
  catch (e) { setStatus(`Error: ${e.message ?? e}`, "error"); }
  finally {
    busy = false;
    if (dirty && urgent) queueMicrotask(tick);
    else if (dirty) { frameRequested = true; requestAnimationFrame(tick); }
    else if (!inputsOnTheirWay) document.body.dataset.busy = "false";   // tests and tools can wait for the prediction to settle
  }
}

const drawPreview = (image) => drawDigit($("preview"), image && Uint8Array.from(image, (v) => Math.round(v * 255)));

function softmax(logits) {
  const max = Math.max(...logits), exps = Array.from(logits, (v) => Math.exp(v - max)), sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

/** No answer on screen (the selected model cannot run): nothing another model read stays up as if it were this one's. */
function clearAnswer() {
  ui.prediction.textContent = "";
  ui.confidence.textContent = "–";
  ui.inference.textContent = "–";
  chart.update(null);
  announce("");
}

function showEmpty() {
  ui.prediction.textContent = "";
  ui.confidence.textContent = "–";
  ui.hint.classList.remove("invisible");
  chart.update(null);
  announce("");
}

function announce(text) {
  if (text === lastAnnounced) return;
  lastAnnounced = text;
  ui.announce.textContent = text;
}

async function predict() {
  const model = selected();
  // a test digit put on the canvas as it is (a sample, a digit from the report) is read exactly as in the test set
  const contract = model?.meta ?? PREVIEW_ONLY, exact = pad.exactImage;
  const processed = pad.isBlank ? null : exact ? fromMnist(exact, contract) : preprocess(pad.pixels(), INK_SIZE, INK_SIZE, contract);
  drawPreview(processed?.image);
  lastImage = processed?.image ?? null;
  if (!processed) { showEmpty(); if (model) inside?.update(model, null); return; }
  ui.hint.classList.add("invisible");
  if (!model?.run) return;
  // with the inside view open, the "taps" program also returns every layer's output; closed, the plain forward runs
  const withTaps = Boolean(inside && insideShownFor(model)), backend = model.backend, start = performance.now();
  runtime.activity++;
  const result = await model.run(processed.input, withTaps ? { taps: true } : undefined);
  const elapsed = performance.now() - start, logits = withTaps ? result.logits : result;
  const probabilities = softmax(logits);
  const best = probabilities.indexOf(Math.max(...probabilities));
  const key = `${model.name}/${backend}${withTaps ? "/taps" : ""}`, recent = timings.get(key) ?? [];
  recent.push(elapsed);
  if (recent.length > 50) recent.shift();
  timings.set(key, recent);
  if (!withTaps) runtime.observe(model, backend, elapsed);
  // a stroke may have ended, or the canvas been cleared, while this ran: show nothing stale
  if (pad.isBlank) { showEmpty(); inside?.update(model, null); return; }
  if (withTaps) inside.update(model, result.taps);
  ui.prediction.textContent = String(best);
  ui.confidence.textContent = `${(probabilities[best] * 100).toFixed(1)}%`;
  ui.inference.textContent = `${ms(elapsed)} · median ${ms(median(recent))} · ${BACKEND_NAMES[backend]}` + (withTaps ? " · with every layer" : "");
  chart.update(probabilities);
  announce(`Prediction: ${best}, ${(probabilities[best] * 100).toFixed(0)} percent`);
  runtime.log("prediction", model);
}

// ---- the inside view and the test-set report: their code and data load when first opened

let inside = null, reportView = null;
const reports = new Map();   // model name -> its report, fetched once
const insideShownFor = (model) => !ui.insidePanel.hidden && inside.shownFor === model.name;

function toggle(button, panel) {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  panel.hidden = !open;
  return open;
}

async function refreshInside() {
  const model = selected();
  if (ui.insidePanel.hidden || !model?.meta.taps?.length || !model.source) return;
  inside ??= new (await import("./inside.js")).InsideView($("activations"), $("weights"),
                                                         { first: $("strip-first"), firstName: $("strip-first-name"), logits: $("strip-logits") });
  inside.show(model, await model.tensors());
  schedule();
}

async function refreshReport() {
  const model = selected();
  if (ui.reportPanel.hidden || !model?.source) return;
  const { ReportView, fetchReport } = await import("./report.js");
  reportView ??= new ReportView($("report-view"), (pixels) => { pad.drawImage(pixels); }, { testids: true });
  if (!reports.has(model.name)) reports.set(model.name, (model.custom ? Promise.resolve(model.custom.report) : fetchReport(model.source))
    .catch((e) => { reports.delete(model.name); throw e; }));
  try { reportView.show(model, await reports.get(model.name)); }
  catch (e) { reportView.summary.textContent = `Could not load the report: ${e.message}`; }
}

// ---- training from scratch: its code, the trainable models and MNIST load when the panel first opens

let trainer = null;
const trainerPanel = $("trainer-panel");
async function openTrainer() {
  const [{ train }, { Trainer }] = await Promise.all([manifest, import("./trainer.js")]);
  trainer ??= new Trainer(trainerPanel, {
    models: train, device: () => runtime.device, predictsOn: () => selected()?.backend, wasm: wasmSettings(), onUse: useTrained,
    storage: () => import("./storage.js"), drawDigit: (pixels) => pad.drawImage(pixels) });
  return trainer;
}

/** "Use this model": the trained network joins the models (its option in the model menu), and is selected. */
async function useTrained({ entry, custom }) {
  reports.delete(entry.name);
  if (inside) inside.shownFor = null;
  let option = [...ui.modelSelect.options].find((o) => o.value === entry.name);
  option ??= ui.modelSelect.appendChild(h("option", { value: entry.name }));
  option.textContent = entry.label;
  ui.modelSelect.value = entry.name;
  visitorChoseModel = true;
  const adding = runtime.addTrained(entry, custom);
  updateReadiness();
  await adding;
  refreshInside().catch(panelError);
  refreshReport().catch(panelError);
}

ui.trainerToggle.addEventListener("click", () => {
  if (!toggle(ui.trainerToggle, trainerPanel)) { trainer?.close(); return; }
  trainerPanel.scrollIntoView({ block: "start", behavior: "smooth" });
  openTrainer().then((t) => t.open()).catch(panelError);
});

const panelError = (e) => setStatus(`Error: ${e.message ?? e}`, "error");
ui.insideToggle.addEventListener("click", () => {
  const open = toggle(ui.insideToggle, ui.insidePanel);
  $("inside-strip").hidden = !open;
  if (open) refreshInside().catch(panelError);
});
ui.reportToggle.addEventListener("click", () => { if (toggle(ui.reportToggle, ui.reportPanel)) refreshReport().catch(panelError); });

function setTool(tool) {
  pad.tool = tool;
  ui.pen.setAttribute("aria-pressed", String(tool === "pen"));
  ui.eraser.setAttribute("aria-pressed", String(tool === "eraser"));
}

function setBrush(size) {
  ui.brush.value = String(size);
  pad.brush = Number(ui.brush.value);
}

// A random digit from a small file of MNIST test images (100 labels, then 100 28x28 images), fetched on first use
let samples = null;
async function drawSample() {
  inputsOnTheirWay++;
  document.body.dataset.busy = "true";
  samples ??= sampleFile("mnist_test_samples.bin");
  try {
    const bytes = await samples, i = Math.floor(Math.random() * 100);
    pad.drawImage(bytes.subarray(100 + i * 784, 100 + (i + 1) * 784));
  } catch (e) {
    samples = null;
    setStatus(`Error: ${e.message}`, "error");
  } finally {
    inputsOnTheirWay--;
    schedule();
  }
}

function setTheme(dark, save) {
  document.documentElement.classList.toggle("dark", dark);
  ui.theme.setAttribute("aria-pressed", String(dark));
  if (save) remember("theme", dark ? "dark" : "light");
}

// Offline: a service worker caches the page and the models (see sw.js). Registered once every model has been downloaded
// (and put in its cache by the runtime), so that it never downloads a model a second time; body[data-offline] says when
// a second visit can go without the network.
async function enableOffline() {
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

pad.addEventListener("change", (event) => { lastInput = performance.now(); schedule(event); });
ui.sample.addEventListener("click", drawSample);
ui.theme.addEventListener("click", () => setTheme(!document.documentElement.classList.contains("dark"), true));
ui.pen.addEventListener("click", () => setTool("pen"));
ui.eraser.addEventListener("click", () => setTool("eraser"));
ui.brush.addEventListener("input", () => setBrush(ui.brush.value));
ui.undo.addEventListener("click", () => pad.undo());
ui.clear.addEventListener("click", () => pad.clear());
ui.modelSelect.addEventListener("change", () => {
  visitorChoseModel = true;
  ui.inference.textContent = "–";
  runtime.select(ui.modelSelect.value);
  updateReadiness();
  showDownloads();
  schedule();
  refreshInside().catch(panelError);
  refreshReport().catch(panelError);
});
ui.backendSelect.addEventListener("change", () => {
  remember("backend", ui.backendSelect.value);
  ui.inference.textContent = "–";
  runtime.setPreference(ui.backendSelect.value);
});
document.addEventListener("keydown", (e) => {
  if (e.target.closest?.("input, select, textarea") || e.altKey || e.metaKey) return;
  const key = e.key.toLowerCase();
  if (e.ctrlKey) { if (key === "z") { e.preventDefault(); pad.undo(); } return; }
  if (/^[0-9]$/.test(key)) { e.preventDefault(); teacher.correct(Number(key)); return; }
  const action = { p: () => setTool("pen"), e: () => setTool("eraser"), z: () => pad.undo(), c: () => pad.clear(), delete: () => pad.clear(),
                   "[": () => setBrush(pad.brush - 2), "]": () => setBrush(pad.brush + 2) }[key];
  if (action) { e.preventDefault(); action(); }
});

/** The site's models (models.json), the menu built from them, and their loading: the most accurate one first. */
async function startModels() {
  manifest = readManifest();
  let models;
  try { models = await manifest; }
  catch (e) {
    setStatus(`Error: ${e.message ?? e}`, "error");
    ui.downloads.replaceChildren(h("div", { class: "flex flex-wrap items-center gap-x-3", dataset: { testid: "download-manifest", state: "error" } },
      h("span", {}, `The list of models could not be loaded: ${e.message ?? e}`),
      h("button", { type: "button", class: "tool min-h-0 py-1 text-xs", dataset: { testid: "retry-manifest" }, onclick: () => { ui.downloads.hidden = true; startModels(); } }, "Retry")));
    ui.downloads.hidden = false;
    return;
  }
  const first = models.predict.reduce((a, b) => (b.meta.test_accuracy > a.meta.test_accuracy ? b : a));
  ui.modelSelect.replaceChildren(...models.predict.map((m) => h("option", { value: m.name }, m.label)));
  ui.modelSelect.value = first.name;
  runtime.start(models.predict, first.name).catch((error) => onRuntimeChange({ kind: "fatal", error }));
}

setBrush(ui.brush.value);
ui.backendSelect.value = runtime.preference;
setTheme(document.documentElement.classList.contains("dark"), false);
showEmpty();
drawPreview(null);
startModels();
// a handle for debugging from the console (and for the tests)
window.mnistApp = { runtime, pad, teacher, get trainer() { return trainer; } };
