// What the page says about its models: the status line, the model card (accuracy, size, fine-tuning), the model and
// backend menus' labels, and the backend line (what runs, why, how fast each was, why one thread). It also keeps the
// body's data-* flags that tools and tests read: ready, backend, settled, finetuned, threads.

import { BACKEND_NAMES } from "./model.js";
import { ms } from "./prediction.js";
import { formatBytes, formatCount } from "./dom.js";

const TONES = {
  info: "bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
  ok: "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
  error: "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300",
};
const percent = (p) => Math.min(100, Math.floor((100 * p.loaded) / p.total));

export class StatusView {
  /** `ui`: { status, modelSelect, modelInfo, backendSelect, backendInfo, noWebGPU }; `models`: the page's Models;
   *  `teacher`: what it says about fine-tuned weights. */
  constructor(ui, { models, teacher }) { Object.assign(this, { ui, models, teacher }); }

  say(text, tone = "info") {
    this.ui.status.textContent = text;
    this.ui.status.className = `rounded-full px-3 py-1 text-xs font-medium ${TONES[tone]}`;
  }

  /** Everything above for `m`, the selected model; returns whether it can predict. */
  update(m) {
    const ready = Boolean(m.run), body = document.body.dataset;
    Object.assign(body, { ready: String(ready), backend: m.backend ?? "", settled: String(this.models.settled),
                          finetuned: String(ready && Boolean(this.teacher.summary(m))) });
    if (m.error) this.say(`Error: ${m.name} failed to load`, "error");
    else if (ready) this.say(`Ready · ${this.backendLabel(m, true)}`, "ok");
    else if (m.progress.active && m.progress.total) this.say(`Downloading the ${m.label}… ${percent(m.progress)}%`);
    else this.say("Loading models…");
    this.ui.noWebGPU.hidden = !this.models.gpuError;   // as soon as it is known: it moves the page early rather than mid-drawing
    this.describeModels(m);
    this.describeBackends(m);
    return ready;
  }

  describeModels(m) {
    for (const option of this.ui.modelSelect.options) {
      const model = this.models.models.get(option.value);
      if (model) option.textContent = model.label + (model.error ? " (unavailable)" : "");
    }
    if (m.error) this.ui.modelInfo.textContent = `Could not load this model: ${m.error}`;
    else {
      this.ui.modelInfo.textContent = this.teacher.describe(m) + (this.teacher.summary(m) ? "Shipped: " : "") +
        `${m.meta.test_accuracy.toFixed(2)}% on the 10 000 MNIST test digits · ` +
        `${formatCount(m.meta.params)} parameters · ${formatBytes(m.meta.files.weights.bytes)}`;
    }
    this.ui.modelInfo.classList.toggle("text-red-700", Boolean(m.error));
  }

  /** The backend in use: WebGPU and the adapter, or WebAssembly, its threads and whether it runs relaxed SIMD's fused
   *  multiply-add; `short` (the status, one line on a phone): only threads, where there are several. */
  backendLabel(m, short = false) {
    if (m.backend === "webgpu") return `WebGPU · ${this.models.adapterName}`;
    const wasm = m.backends.get("wasm")?.run.wasm;
    if (!wasm || (short && wasm.threads === 1)) return BACKEND_NAMES[m.backend];
    return `WebAssembly · ${wasm.threads} thread${wasm.threads === 1 ? "" : "s"}${wasm.fma && !short ? " · FMA" : ""}`;
  }

  // which backend runs the selected model, why, and how fast each one was when timed during warm-up
  describeBackends(m) {
    for (const option of this.ui.backendSelect.options) {
      if (option.value === "auto") continue;
      const why = m.backendErrors.get(option.value);
      option.textContent = BACKEND_NAMES[option.value] + (why && this.models.settled ? " (unavailable)" : "");
    }
    document.body.dataset.threads = String(m.backends.get("wasm")?.run.wasm?.threads ?? "");
    if (!m.backend) { this.ui.backendInfo.textContent = m.error ? "" : "Starting…"; return; }
    const timed = [...m.backends.entries()].filter(([, b]) => Number.isFinite(b.ms)).map(([k, b]) => `${BACKEND_NAMES[k]} ${ms(b.ms)}`);
    const missing = [...m.backendErrors.entries()].map(([k, why]) => `${BACKEND_NAMES[k]} unavailable: ${why}`);
    const reason = this.models.preference === m.backend ? "your choice" : !this.models.settled ? "first ready" : m.backends.size > 1 ? "fastest here" : "the one available";
    const oneThread = m.backend !== "wasm" ? "" : m.threadsLost ? `one thread: ${m.threadsLost}` : m.wasm.why ? `one thread: ${m.wasm.why}` : "";
    this.ui.backendInfo.textContent = `Running on ${this.backendLabel(m)} (${reason})` + (timed.length ? ` · warm run: ${timed.join(", ")}` : "") +
      (oneThread ? ` · ${oneThread}` : "") + (missing.length ? ` · ${missing.join("; ")}` : "");
  }
}
