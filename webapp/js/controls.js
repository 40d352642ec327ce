// The drawing's controls: pen, eraser, brush size, undo, clear, "Try a sample" (a random MNIST test digit from a small
// file shipped with the page), dark mode, and the keyboard: P, E, [ ], Z or Ctrl+Z, C or Delete, and 0-9 to say which
// digit was drawn.

import { remember } from "./settings.js";

const SAMPLES = 100;   // mnist_test_samples.bin: 100 labels, then 100 28x28 images

export class Controls {
  /** `ui`: { pen, eraser, brush, undo, clear, sample, theme }; `pad`: the DrawingPad; `awaiting(promise)`: the answer
   *  waits for an input on its way; `teach(digit)`: the visitor says which digit it is; `onError(e)`. */
  constructor(ui, { pad, awaiting, teach, onError }) {
    Object.assign(this, { ui, pad, awaiting, teach, onError });
    this.samples = null;
    ui.pen.addEventListener("click", () => this.setTool("pen"));
    ui.eraser.addEventListener("click", () => this.setTool("eraser"));
    ui.brush.addEventListener("input", () => this.setBrush(ui.brush.value));
    ui.undo.addEventListener("click", () => pad.undo());
    ui.clear.addEventListener("click", () => pad.clear());
    ui.sample.addEventListener("click", () => this.drawSample());
    ui.theme.addEventListener("click", () => this.setTheme(!document.documentElement.classList.contains("dark"), true));
    document.addEventListener("keydown", (e) => this.key(e));
    this.setBrush(ui.brush.value);
    this.setTheme(document.documentElement.classList.contains("dark"), false);
  }

  setTool(tool) {
    this.pad.tool = tool;
    this.ui.pen.setAttribute("aria-pressed", String(tool === "pen"));
    this.ui.eraser.setAttribute("aria-pressed", String(tool === "eraser"));
  }

  setBrush(size) {
    this.ui.brush.value = String(size);
    this.pad.brush = Number(this.ui.brush.value);
  }

  setTheme(dark, save) {
    document.documentElement.classList.toggle("dark", dark);
    this.ui.theme.setAttribute("aria-pressed", String(dark));
    if (save) remember("theme", dark ? "dark" : "light");
  }

  async drawSample() {
    this.samples ??= import("./samples.js").then(({ sampleFile }) => sampleFile("mnist_test_samples.bin"));   // on first use
    try {
      const bytes = await this.awaiting(this.samples), i = Math.floor(Math.random() * SAMPLES);
      this.pad.drawImage(bytes.subarray(SAMPLES + i * 784, SAMPLES + (i + 1) * 784));
    } catch (e) {
      this.samples = null;
      this.onError(e);
    }
  }

  key(e) {
    if (e.target.closest?.("input, select, textarea") || e.altKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey) { if (key === "z") { e.preventDefault(); this.pad.undo(); } return; }
    if (/^[0-9]$/.test(key)) { e.preventDefault(); this.teach(Number(key)); return; }
    const action = { p: () => this.setTool("pen"), e: () => this.setTool("eraser"), z: () => this.pad.undo(), c: () => this.pad.clear(),
                     delete: () => this.pad.clear(), "[": () => this.setBrush(this.pad.brush - 2), "]": () => this.setBrush(this.pad.brush + 2) }[key];
    if (action) { e.preventDefault(); action(); }
  }
}
