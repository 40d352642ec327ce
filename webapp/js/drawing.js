// The drawing pad: pointer input (mouse, touch, stylus) turned into strokes, drawn twice: on the visible canvas at the
// screen's pixel density, and on a fixed 280x280 "ink" canvas that preprocessing reads. Strokes are kept so that
// undo (including undoing a clear) can redraw them.

export const INK_SIZE = 280;
const INK = "#fff", PAPER = "#000";
export const UNDO_STEPS = 100;   // actions kept for undo, beyond those the drawing on screen is made of

export class DrawingPad extends EventTarget {
  constructor(canvas) {
    super();
    this.canvas = canvas;
    this.view = canvas.getContext("2d");
    this.inkCanvas = document.createElement("canvas");
    this.inkCanvas.width = this.inkCanvas.height = INK_SIZE;
    this.ink = this.inkCanvas.getContext("2d", { willReadFrequently: true });
    this.tool = "pen";
    this.brush = 18;          // stroke width in ink-canvas pixels, so it scales with the canvas on screen
    this.actions = [];        // strokes, and clears that remember what they cleared (so undo brings it back)
    this.current = null;
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#resize();
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  /** Ink intensity per ink-canvas pixel, in [0, 1] (white on black, as MNIST). */
  pixels() {
    const rgba = this.ink.getImageData(0, 0, INK_SIZE, INK_SIZE).data;
    const gray = new Float32Array(INK_SIZE * INK_SIZE);
    for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4] / 255;
    return gray;
  }

  get strokes() {
    const lastClear = this.actions.findLastIndex((a) => a.type === "clear");
    return this.actions.slice(lastClear + 1);
  }

  get isBlank() { return !this.strokes.some((s) => s.tool === "pen"); }

  clear() {
    if (this.strokes.length === 0) return;
    this.actions.push({ type: "clear" });
    this.#trim();
    this.#redraw();
    this.#changed(true);
  }

  /** A long visit keeps a bounded history: the oldest actions go, never one that the drawing on screen is made of. */
  #trim() {
    const lastClear = this.actions.findLastIndex((a) => a.type === "clear");
    const excess = Math.min(this.actions.length - UNDO_STEPS, lastClear + 1);
    if (excess > 0) this.actions.splice(0, excess);
  }

  /** Paint a 28x28 grayscale image (values 0-255, white on black) scaled onto the canvas, as one undoable action. */
  drawImage(pixels) {
    const small = document.createElement("canvas");
    small.width = small.height = 28;
    const ctx = small.getContext("2d"), data = ctx.createImageData(28, 28);
    pixels.forEach((v, i) => data.data.set([v, v, v, 255], i * 4));
    ctx.putImageData(data, 0, 0);
    this.actions.push({ type: "clear" }, { type: "image", tool: "pen", image: small, pixels: Uint8Array.from(pixels) });
    this.#trim();
    this.#redraw();
    this.#changed(true);
  }

  /** The 28x28 image that drawImage put on the canvas, while nothing has been drawn over it (else null). */
  get exactImage() {
    const last = this.actions.at(-1);
    return last?.type === "image" ? last.pixels : null;
  }

  undo() {
    if (this.actions.length === 0) return;
    this.actions.pop();
    this.#redraw();
    this.#changed(true);
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1, rect = this.canvas.getBoundingClientRect();
    const size = Math.max(1, Math.round(rect.width * dpr));
    if (this.canvas.width === size && this.canvas.height === size) return;
    this.canvas.width = this.canvas.height = size;
    this.#redraw();
  }

  #point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [(e.clientX - rect.left) * INK_SIZE / rect.width, (e.clientY - rect.top) * INK_SIZE / rect.height];
  }

  #down(e) {
    if (e.button !== 0 && e.pointerType === "mouse") return;
    e.preventDefault();
    // a stroke that leaves the canvas keeps drawing; capture is refused for a pointer the browser does not track (an
    // event made by a script), and the stroke then simply ends at the edge
    try { this.canvas.setPointerCapture(e.pointerId); } catch { /* drawn without capture */ }
    this.current = { type: "stroke", tool: this.tool, width: this.brush, points: [this.#point(e)], pointerId: e.pointerId };
    this.actions.push(this.current);
    this.#trim();
    this.#paintSegment(this.current, 0);
    this.#changed(false);
  }

  #move(e) {
    const stroke = this.current;
    if (!stroke || e.pointerId !== stroke.pointerId) return;
    e.preventDefault();
    const events = e.getCoalescedEvents?.() ?? [e];
    for (const ev of events.length ? events : [e]) {
      stroke.points.push(this.#point(ev));
      this.#paintSegment(stroke, stroke.points.length - 1);
    }
    this.#changed(false);
  }

  #up(e) {
    if (!this.current || e.pointerId !== this.current.pointerId) return;
    delete this.current.pointerId;
    this.current = null;
    this.#changed(true);
  }

  // Draw the segment ending at point i of the stroke (a dot when i is 0) on both canvases
  #paintSegment(stroke, i) {
    const [x1, y1] = stroke.points[i], [x0, y0] = stroke.points[Math.max(0, i - 1)];
    const viewScale = this.canvas.width / INK_SIZE;
    for (const [ctx, s] of [[this.ink, 1], [this.view, viewScale]]) {
      ctx.strokeStyle = ctx.fillStyle = stroke.tool === "pen" ? INK : PAPER;
      ctx.lineWidth = stroke.width * s;
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      if (i === 0) { ctx.arc(x1 * s, y1 * s, stroke.width * s / 2, 0, Math.PI * 2); ctx.fill(); }
      else { ctx.moveTo(x0 * s, y0 * s); ctx.lineTo(x1 * s, y1 * s); ctx.stroke(); }
    }
  }

  #redraw() {
    for (const ctx of [this.ink, this.view]) {
      ctx.fillStyle = PAPER;
      ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    }
    for (const action of this.strokes) {
      if (action.type === "image") this.#paintImage(action.image);
      else action.points.forEach((_, i) => this.#paintSegment(action, i));
    }
  }

  #paintImage(image) {
    for (const ctx of [this.ink, this.view]) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(image, 0, 0, ctx.canvas.width, ctx.canvas.height);
    }
  }

  #changed(final) {
    this.dispatchEvent(new CustomEvent("change", { detail: { final } }));
  }
}
