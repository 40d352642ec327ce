// Wiring: drawing -> preprocessing -> model -> the answer. Each part of the page is a module that owns its elements and
// gets what it needs here; this file only builds them, connects their events, and starts the models.
import { DrawingPad } from "./drawing.js";
import { Models, readManifest } from "./models.js";
import { firstModel } from "./early.js";
import { BACKEND_NAMES } from "./model.js";
import { Scheduler } from "./scheduler.js";
import { Prediction } from "./prediction.js";
import { StatusView } from "./status.js";
import { DownloadsView } from "./downloads.js";
import { Controls } from "./controls.js";
import { Panels } from "./panels.js";
import { Teacher } from "./teach.js";
import { remember, remembered } from "./settings.js";
import { h } from "./dom.js";

const $ = (id) => document.getElementById(id);
const modelSelect = $("model-select"), backendSelect = $("backend-select");
let manifest = null;              // the promise of the site's models (models.json): { predict, train }
let visitorChoseModel = false;

/** The model the menu names (none until the manifest is in). */
const selected = () => models.models.get(modelSelect.value) ?? null;
const showError = (e) => status.say(`Error: ${e?.message ?? e}`, "error");

const pad = new DrawingPad($("pad"));
const models = new Models(onModelsChange, { preference: remembered("backend", ["auto", "webgpu", "wasm"]) ?? "auto",
                                            isIdle: () => scheduler.idle, prepare: (model, run) => teacher.prepare(model, run) });
const scheduler = new Scheduler({ predict: () => prediction.predict(selected()), canRun: () => Boolean(selected()?.run), onError: showError });
const prediction = new Prediction({ prediction: $("prediction"), confidence: $("confidence"), inference: $("inference-ms"), hint: $("pad-hint"),
                                    announce: $("announce"), preview: $("preview"), chart: [$("chart"), $("chart-labels"), $("chart-text")] },
                                  { pad, models, inside: (model) => panels.insideFor(model) });
const teacher = new Teacher({ correct: $("correct"), count: $("examples-count"), start: $("finetune"), cancel: $("finetune-cancel"),
                              reset: $("reset-model"), forget: $("forget-examples"), status: $("finetune-status"),
                              curve: $("loss-curve"), progress: $("finetune-progress") },
                            { selected, currentImage: () => prediction.pixels, onChange: () => { refresh(); scheduler.schedule(); } });
const status = new StatusView({ status: $("status"), modelSelect, modelInfo: $("model-info"), backendSelect, backendInfo: $("backend-info"),
                                noWebGPU: $("no-webgpu") }, { models, teacher });
const downloads = new DownloadsView($("downloads"), (name) => models.retry(name).catch(showError));
const panels = new Panels({ insideToggle: $("inside-toggle"), insidePanel: $("inside-panel"), insideStrip: $("inside-strip"),
                            activations: $("activations"), weights: $("weights"),
                            strip: { first: $("strip-first"), firstName: $("strip-first-name"), logits: $("strip-logits") },
                            reportToggle: $("report-toggle"), reportPanel: $("report-panel"), reportView: $("report-view"),
                            trainerToggle: $("trainer-toggle"), trainerPanel: $("trainer-panel") },
                          { selected, pad, models, trainable: () => manifest.then((m) => m.train), schedule: () => scheduler.schedule(),
                            onTrained: useTrained, onError: showError });
new Controls({ pen: $("pen"), eraser: $("eraser"), brush: $("brush"), undo: $("undo"), clear: $("clear"), sample: $("sample"), theme: $("theme") },
             { pad, awaiting: (input) => scheduler.awaiting(input), teach: (digit) => teacher.correct(digit), onError: showError });

/** The selected model's state, everywhere the page shows it. */
function refresh() {
  const m = selected();
  if (!m) return;
  const ready = status.update(m);
  teacher.refresh(m);
  if (m.error) prediction.clear();
  if (ready) scheduler.schedule();
}

/** refresh() at the next frame, once however often it is asked for: a download reports every chunk it receives, and
 *  the preloaded first model's chunks come all at once (each refresh cost the first answer ~1 ms of formatting). */
let refreshing = 0;
const refreshSoon = () => { refreshing ||= requestAnimationFrame(() => { refreshing = 0; refresh(); }); };

function onModelsChange(event) {
  if (event.kind === "loading") { document.body.dataset.ready = "false"; status.say("Loading models…"); return; }
  if (event.kind === "fatal") { showError(event.error); return; }
  downloads.show(models.models.values(), selected());
  if (event.kind === "progress") { if (event.model === selected() && !event.model.run) refreshSoon(); return; }
  // the default model failed while another loaded: switch to a working one rather than show nothing (never away from a
  // model the visitor picked: they see why it failed)
  if (selected().error && !visitorChoseModel) {
    const working = [...models.models.values()].find((x) => x.run);
    if (working) modelSelect.value = working.name;
  }
  refresh();
  if (event.kind === "lost") status.say(`GPU device lost, recovering… (${BACKEND_NAMES[selected().backend] ?? "nothing"} meanwhile)`, "error");
  if (event.kind === "downloaded") import("./offline.js").then(({ enableOffline }) => enableOffline()).catch(showError);
  if (event.kind === "model" && event.model === selected()) panels.refresh();
}

/** "Use this model": the network trained here joins the model menu, and is selected. */
async function useTrained({ entry, custom }) {
  panels.forget(entry.name);
  const option = [...modelSelect.options].find((o) => o.value === entry.name) ?? modelSelect.appendChild(h("option", { value: entry.name }));
  option.textContent = entry.label;
  modelSelect.value = entry.name;
  visitorChoseModel = true;
  const adding = models.addTrained(entry, custom);
  refresh();
  await adding;
  panels.refresh();
}

pad.addEventListener("change", (event) => scheduler.drawingChanged(event.detail?.final === true));
modelSelect.addEventListener("change", () => {
  visitorChoseModel = true;
  prediction.forgetTime();
  models.select(modelSelect.value);
  refresh();
  downloads.show(models.models.values(), selected());
  scheduler.schedule();
  panels.refresh();
});
backendSelect.addEventListener("change", () => {
  remember("backend", backendSelect.value);
  prediction.forgetTime();
  models.setPreference(backendSelect.value);
});

/** The site's models (models.json), the menu built from them, and their loading: the most accurate one first. */
async function startModels() {
  manifest = readManifest();
  let listed;
  try { listed = await manifest; }
  catch (e) { showError(e); downloads.manifestFailed(e, startModels); return; }
  const first = firstModel(listed.predict);
  modelSelect.replaceChildren(...listed.predict.map((m) => h("option", { value: m.name }, m.label)));
  modelSelect.value = first.name;
  models.start(listed.predict, first.name).catch((error) => onModelsChange({ kind: "fatal", error }));
}

backendSelect.value = models.preference;
prediction.empty();
scheduler.schedule();
startModels();

// The page's surface for tests and tools (docs/testing.md), instead of its internals: what a model is doing, the load's
// events, and the few actions a test cannot take through the page's controls.
const snapshot = (m) => m && ({
  name: m.name, ready: Boolean(m.run), error: m.error, retryable: m.retryable, backend: m.backend, threads: m.backends.get("wasm")?.run.wasm?.threads ?? null,
  timings: Object.fromEntries([...m.backends].map(([kind, b]) => [kind, b.ms])), finetuned: teacher.summary(m),
});
window.mnistApp = {
  drawImage: (pixels) => pad.drawImage(pixels),             // a 28x28 digit, read exactly as the test set has it
  strokes: () => pad.actions.length,                        // actions kept for undo
  pixels: () => pad.pixels(),                               // the canvas's ink, as preprocessing reads it
  events: () => models.events.map((e) => ({ ...e })),       // [{ t (ms since navigation), event, model }]
  models: () => [...models.models.values()].map(snapshot),  // every model of the page, as snapshot() says
  model: (name) => snapshot(models.models.get(name)),
  adapter: () => models.adapterName,
  run: (name, backend) => { const m = models.models.get(name); return (backend ? m.backends.get(backend) : m.backends.get(m.backend)).run; },
  retime: async (name) => { const m = models.models.get(name); for (const k of m.backends.keys()) await m.time(k); return snapshot(m).timings; },
  // a backend made slower by `ms` a run, as a busy CPU or GPU would (the in-use re-check)
  slowDown: (name, kind, ms) => {
    const b = models.models.get(name).backends.get(kind), run = b.run;
    b.run = Object.assign(async (...args) => { const t = performance.now(); while (performance.now() - t < ms); return run(...args); }, run);
  },
  loseGPU: () => models.device.destroy(),                   // as a driver reset would
  trainer: () => panels.trainer?.snapshot() ?? null,
};
