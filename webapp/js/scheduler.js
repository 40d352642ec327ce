// When to predict. While a stroke is being drawn, at most one prediction per animation frame; once the drawing is final
// (pointer up, clear, undo, a sample) its prediction starts at once instead of waiting for the next frame. Never two in
// flight: the newest drawing always wins. Background work (other models, WebGPU, timing) waits for idle moments.
// body[data-busy] is "false" once the prediction for the current drawing has landed (tests and tools wait for it).

const QUIET_AFTER_INPUT_MS = 300;

export class Scheduler {
  /** `predict()` reads the current drawing and shows its answer; `canRun()` whether a model can predict now;
   *  `onError(e)` hears a prediction that failed. */
  constructor({ predict, canRun, onError }) {
    Object.assign(this, { predict, canRun, onError });
    this.dirty = true;
    this.urgent = false;
    this.busy = false;
    this.frameRequested = false;
    this.pending = 0;                // inputs on their way (a sample being fetched): until drawn, nothing has settled
    this.lastInput = -Infinity;      // when the drawing last changed
  }

  /** No prediction runs or is about to: background work may take the CPU. */
  get idle() { return !this.busy && !(this.dirty && this.canRun()) && performance.now() - this.lastInput > QUIET_AFTER_INPUT_MS; }

  /** The drawing changed (`final`: the stroke is done). */
  drawingChanged(final = false) {
    this.lastInput = performance.now();
    this.schedule(final);
  }

  /** Predict again, soon (`final`: at once). */
  schedule(final = false) {
    this.dirty = true;
    this.urgent ||= final;
    document.body.dataset.busy = "true";
    if (this.urgent && !this.busy) queueMicrotask(() => this.tick());
    else this.nextFrame();
  }

  /** An input that will change the drawing is on its way: until it arrives and is read, the answer has not settled. */
  async awaiting(input) {
    this.pending++;
    document.body.dataset.busy = "true";
    try { return await input; }
    finally { this.pending--; this.schedule(true); }
  }

  nextFrame() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => this.tick());
  }

  async tick() {
    this.frameRequested = false;
    if (this.busy || !this.dirty) return;
    this.dirty = false;
    this.urgent = false;
    this.busy = true;
    try { await this.predict(); }
    catch (e) { this.onError(e); }
    finally {
      this.busy = false;
      if (this.dirty && this.urgent) queueMicrotask(() => this.tick());
      else if (this.dirty) this.nextFrame();
      else if (!this.pending) document.body.dataset.busy = "false";
    }
  }
}
