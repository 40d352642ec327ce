// "Teach it your handwriting": the visitor says which digit they drew (kept as an example), fine-tunes the selected model
// on their examples in the page, and can go back to the shipped model. Fine-tuned weights are kept per model and put
// into every backend of that model as it loads. The training code (finetune.js), the database (storage.js) and the
// shipped MNIST digits load only when first needed; a localStorage flag says whether a previous visit left anything,
// so that a first visit never opens the database.

import { remember, remembered } from "./settings.js";
import { formatCount } from "./dom.js";

const FLAG = "teach";   // a setting: "1" once an example or fine-tuned weights were kept
const kept = () => remembered(FLAG, ["1"]) !== null;
const keep = () => remember(FLAG, "1");
const percent = (x) => (x === null ? "–" : `${x.toFixed(1)}%`);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const heldOut = (n) => `${formatCount(n)} held-out MNIST digits`;

export class Teacher {
  /** `selected()` is the selected model, `currentImage()` the drawing as the model reads it (784 u8 pixels) or null,
   *  `onChange()` is called when a model's weights change (fine-tuned or reset). */
  constructor(ui, { selected, currentImage, onChange }) {
    Object.assign(this, { ui, selected, currentImage, onChange });
    this.tuned = new Map();        // model name -> { weights, summary } while it runs fine-tuned weights
    this.lookups = new Map();      // model name -> promise of its stored fine-tuned weights (or null)
    this.examples = null;          // promise of [{ label, image }]
    this.inMemoryOnly = false;     // IndexedDB unavailable: examples and weights last for this visit
    this.running = false;
    this.cancelRequested = false;
    this.samples = null;
    ui.correct.addEventListener("click", (e) => { const d = e.target.closest("[data-digit]")?.dataset.digit; if (d) this.correct(Number(d)); });
    ui.start.addEventListener("click", () => this.fineTune());
    ui.cancel.addEventListener("click", () => { this.cancelRequested = true; ui.cancel.disabled = true; });
    ui.reset.addEventListener("click", () => this.reset());
    ui.forget.addEventListener("click", () => this.forgetExamples());
    if (kept()) this.loadExamples().then((all) => this.showCount(all));
  }

  storage() { return import("./storage.js"); }

  setStatus(text, state) {
    this.ui.status.textContent = text;
    if (state) this.ui.status.dataset.state = state;
  }

  showCount(all) {
    this.ui.count.textContent = plural(all.length, "example");
    this.ui.forget.disabled = !all.length;
  }

  async forgetExamples() {
    const all = await this.loadExamples();
    all.length = 0;
    await this.storage().then((s) => s.storage.clear("examples")).catch(() => {});
    this.showCount(all);
    if (!this.running) this.setStatus("Your examples are forgotten (a fine-tuned model stays until you reset it).");
  }

  loadExamples() {
    this.examples ??= this.storage().then((s) => s.loadExamples()).catch(() => { this.inMemoryOnly = true; return []; });
    return this.examples;
  }

  summary(model) { return this.tuned.get(model.name)?.summary ?? null; }

  /** The model's stored fine-tuned weights, looked up once; a damaged entry is dropped with a message. */
  stored(model) {
    if (!kept() || !model.source?.train) return Promise.resolve(null);
    if (!this.lookups.has(model.name)) {
      this.lookups.set(model.name, (async () => {
        const s = await this.storage(), shipped = await model.tensors();
        try { return await s.tunedWeights(model.meta, model.source.train.trains, shipped); }
        catch (e) {
          await s.storage.delete("weights", model.name).catch(() => {});
          this.setStatus(`Your fine-tuned ${model.name} could not be read (${e.message}); it runs the shipped weights.`, "error");
          return null;
        }
      })().catch(() => null));   // no IndexedDB: nothing stored
    }
    return this.lookups.get(model.name);
  }

  /** Called for every backend of a model as it loads, before it predicts: fine-tuned weights go in first. */
  async prepare(model, run) {
    const tuned = this.tuned.get(model.name) ?? await this.stored(model);
    if (!tuned) return;
    await run.writeWeights(tuned.weights);
    this.tuned.set(model.name, tuned);
  }

  async correct(digit) {
    const image = this.currentImage();
    if (!image) { if (!this.running) this.setStatus("Draw a digit first, then say which it is."); return; }
    const all = await this.loadExamples(), example = { label: digit, image: image.slice() };
    all.push(example);
    if (!this.inMemoryOnly) {
      try { await (await this.storage()).addExample(example); keep(); }
      catch { this.inMemoryOnly = true; }
    }
    this.showCount(all);
    const same = all.filter((e) => e.label === digit).length;
    if (!this.running) {
      this.setStatus(`Kept as a ${digit} (${plural(same, `${digit}`)} so far)` + (this.inMemoryOnly ? "; this browser cannot store it, so it lasts for this visit." : "."));
    }
  }

  async fineTune() {
    const model = this.selected(), ui = this.ui;
    if (this.running) return;
    if (!model?.run) { this.setStatus("The model is still loading.", "error"); return; }
    if (!model.source.train) { this.setStatus(`${model.name} was exported without a training step.`, "error"); return; }
    this.running = true;
    this.cancelRequested = false;
    ui.start.disabled = true;
    ui.cancel.hidden = false;
    ui.cancel.disabled = false;
    this.setStatus("Loading the training step…", "running");
    const started = performance.now();
    try {
      const [all, { fineTune, loadSamples, drawLoss }] = await Promise.all([this.loadExamples(), import("./finetune.js")]);
      const { steps } = model.source.train;
      this.samples ??= import("./samples.js").then(({ sampleFile }) => sampleFile("finetune.bin")).then(loadSamples)
        .catch((e) => { this.samples = null; throw e; });
      const samples = await this.samples, losses = [];
      ui.curve.hidden = ui.progress.hidden = false;
      ui.progress.max = steps;
      ui.progress.value = 0;
      drawLoss(ui.curve, losses, steps);
      const result = await fineTune(model, all, samples, {
        onPhase: (phase) => this.setStatus(`Fine-tuning the ${model.name}: ${phase}…`),
        onStep: (step, loss) => {
          losses.push(loss);
          drawLoss(ui.curve, losses, steps);
          ui.progress.value = step;
          this.setStatus(`Fine-tuning: step ${step} of ${steps} · loss ${loss.toFixed(3)}`);
        },
        cancelled: () => this.cancelRequested,
      });
      if (!result) { this.setStatus("Cancelled: the model is as it was before.", "idle"); return; }
      Object.assign(result.summary, { seconds: (performance.now() - started) / 1000, heldOut: samples.heldOut.n,
                                      shipped: this.summary(model)?.shipped ?? result.summary.before });   // a second fine-tune starts from the first's weights
      await this.keep(model, result);
    } catch (e) {
      this.setStatus(`Fine-tuning failed: ${e.message ?? e}`, "error");
    } finally {
      this.running = false;
      ui.start.disabled = false;
      ui.cancel.hidden = ui.progress.hidden = true;
      this.onChange(model);
    }
  }

  /** Fine-tuned weights into every backend of the model, and into storage; says how it went. */
  async keep(model, { weights, summary }) {
    const tuned = { weights, summary };
    this.tuned.set(model.name, tuned);
    this.lookups.set(model.name, Promise.resolve(tuned));
    for (const b of model.backends.values()) if (b.run !== model.run) await b.run.writeWeights(weights);
    let kept = !this.inMemoryOnly;
    if (kept) {
      try { await (await this.storage()).keepTuned(model.meta, weights, summary); keep(); }
      catch { kept = false; }
    }
    const { before, after } = summary;
    this.setStatus(`Done in ${summary.seconds.toFixed(1)} s: your ${plural(summary.examples, "digit")} ${percent(before.yours)} → ${percent(after.yours)}, ` +
      `${heldOut(summary.heldOut)} ${percent(before.mnist)} → ${percent(after.mnist)}` + (kept ? "." : " (kept for this visit only)."), "done");
  }

  async reset() {
    const model = this.selected();
    if (this.running || !model || !this.tuned.has(model.name)) return;
    const shipped = await model.tensors();
    const weights = Object.fromEntries(model.source.train.trains.map((name) => [name, shipped(name).data]));
    for (const b of model.backends.values()) await b.run.writeWeights(weights);
    this.tuned.delete(model.name);
    this.lookups.set(model.name, Promise.resolve(null));
    await this.storage().then((s) => s.storage.delete("weights", model.name)).catch(() => {});
    this.setStatus(`Back to the shipped ${model.name}.`, "idle");
    this.onChange(model);
  }

  /** The selected model changed, or its weights did: Reset is there for fine-tuned weights only. */
  refresh(model) { this.ui.reset.disabled = !this.summary(model); }

  /** The model card's line about fine-tuning, or "" for the shipped weights. */
  describe(model) {
    const s = this.summary(model);
    if (!s) return "";
    return `Fine-tuned here on ${plural(s.examples, "digit")} of yours: ${percent(s.after.mnist)} on ${heldOut(s.heldOut)} ` +
      `(shipped ${percent(s.shipped.mnist)}), ${percent(s.after.yours)} on your digits (shipped ${percent(s.shipped.yours)}). `;
  }
}
