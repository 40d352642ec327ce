// The panels the visitor opens: "Inside the model", the test-set report and "Train from scratch". Their code and their
// data load when first opened, never before; each gets the elements it owns and what it needs as arguments.

import { wasmSettings } from "./wasm_settings.js";

const toggle = (button, panel) => {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  panel.hidden = !open;
  return open;
};

export class Panels {
  /** `ui`: the toggles and panels ({ insideToggle, insidePanel, insideStrip, activations, weights, strip, reportToggle,
   *  reportPanel, reportView, trainerToggle, trainerPanel }); `selected()` the model on screen; `pad` the drawing;
   *  `models` the page's Models; `trainable()` a promise of the manifest's models to train; `schedule()` predicts again;
   *  `onTrained({ entry, custom })` a model trained here is to be used; `onError(e)`. */
  constructor(ui, { selected, pad, models, trainable, schedule, onTrained, onError }) {
    Object.assign(this, { ui, selected, pad, models, trainable, schedule, onTrained, onError });
    this.inside = null;
    this.reportView = null;
    this.reports = new Map();   // model name -> its report, fetched once
    this.trainer = null;
    ui.insideToggle.addEventListener("click", () => {
      const open = toggle(ui.insideToggle, ui.insidePanel);
      ui.insideStrip.hidden = !open;
      if (open) this.refreshInside().catch(onError);
    });
    ui.reportToggle.addEventListener("click", () => { if (toggle(ui.reportToggle, ui.reportPanel)) this.refreshReport().catch(onError); });
    ui.trainerToggle.addEventListener("click", () => {
      if (!toggle(ui.trainerToggle, ui.trainerPanel)) { this.trainer?.close(); return; }
      ui.trainerPanel.scrollIntoView({ block: "start", behavior: "smooth" });
      this.openTrainer().then((t) => t.open()).catch(onError);
    });
  }

  /** The inside view, if it is open and showing `model`: predictions then run the taps program for it. */
  insideFor(model) { return this.inside && !this.ui.insidePanel.hidden && this.inside.shownFor === model.name ? this.inside : null; }

  /** The selected model changed, or loaded: the open panels follow it. */
  refresh() {
    this.refreshInside().catch(this.onError);
    this.refreshReport().catch(this.onError);
  }

  /** A model of this name was replaced (a new one trained here): nothing of the old one is shown again. */
  forget(name) {
    this.reports.delete(name);
    if (this.inside) this.inside.shownFor = null;
  }

  async refreshInside() {
    const model = this.selected(), ui = this.ui;
    if (ui.insidePanel.hidden || !model?.meta.taps?.length || !model.source) return;
    this.inside ??= new (await import("./inside.js")).InsideView(ui.activations, ui.weights, ui.strip);
    this.inside.show(model, await model.tensors());
    this.schedule();
  }

  async refreshReport() {
    const model = this.selected();
    if (this.ui.reportPanel.hidden || !model?.source) return;
    const { ReportView, fetchReport } = await import("./report.js");
    this.reportView ??= new ReportView(this.ui.reportView, (pixels) => this.pad.drawImage(pixels), { testids: true });
    if (!this.reports.has(model.name)) {
      const report = model.custom ? Promise.resolve(model.custom.report) : fetchReport(model.source);
      this.reports.set(model.name, report.catch((e) => { this.reports.delete(model.name); throw e; }));
    }
    try { this.reportView.show(model, await this.reports.get(model.name)); }
    catch (e) { this.reportView.summary.textContent = `Could not load the report: ${e.message}`; }
  }

  async openTrainer() {
    const [train, { Trainer }] = await Promise.all([this.trainable(), import("./trainer.js")]);
    this.trainer ??= new Trainer(this.ui.trainerPanel, {
      models: train, device: () => this.models.device, predictsOn: () => this.selected()?.backend, wasm: wasmSettings(),
      onUse: this.onTrained, storage: () => import("./storage.js"), drawDigit: (pixels) => this.pad.drawImage(pixels) });
    return this.trainer;
  }
}
