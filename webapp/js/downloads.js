// The downloads view: one row per model whose files broke off (the error and a Retry button), and one for the selected
// model while its files are on their way (a progress bar with bytes of total); the other models download out of sight,
// so that nothing moves the canvas and the answer on a phone's screen. Rows are made once and updated in place, at most
// once per frame. If the site's list of models itself cannot load, one row says so, with its own Retry.

import { h, formatBytes } from "./dom.js";

const button = (testid, onclick) => h("button", { type: "button", class: "tool min-h-0 py-1 text-xs", dataset: { testid }, onclick }, "Retry");

export class DownloadsView {
  /** `container`: the (empty) downloads region; `retry(name)`: fetch a model's files again. */
  constructor(container, retry) {
    Object.assign(this, { container, retry });
    this.frame = 0;
  }

  /** Every model of `models` (Model), `selected` the one on screen. */
  show(models, selected) {
    this.frame ||= requestAnimationFrame(() => {
      this.frame = 0;
      for (const m of models) this.update(m, m === selected);
      this.container.hidden = !this.container.querySelector("[data-model]:not([hidden])");
    });
  }

  update(m, selected) {
    let row = this.container.querySelector(`[data-model="${m.name}"]`);
    const failed = Boolean(m.loadError && m.retryable), visible = (m.progress.active && selected) || failed;
    if (!row && !visible) return;
    row ??= this.row(m);
    row.hidden = !visible;
    row.dataset.state = failed ? "error" : m.progress.active ? "loading" : "done";
    const bar = row.querySelector("progress"), text = row.querySelector("[data-text]");
    bar.max = m.progress.total || 1;
    bar.value = Math.min(m.progress.loaded, bar.max);
    text.textContent = failed ? m.loadError : `${formatBytes(m.progress.loaded)}${m.progress.total ? ` of ${formatBytes(m.progress.total)}` : ""}`;
    row.querySelector("button").hidden = !failed;
    bar.hidden = failed;
  }

  row(m) {
    const row = h("div", { class: "flex flex-wrap items-center gap-x-3 gap-y-1", dataset: { model: m.name, testid: `download-${m.name}` } },
      h("span", { class: "w-28 font-medium" }, `${m.label} model`),
      h("progress", { class: "h-2 w-40 accent-indigo-600", "aria-label": `Downloading the ${m.label} model` }),
      h("span", { "data-text": true, class: "tabular-nums" }),
      button(`retry-${m.name}`, () => this.retry(m.name)));
    this.container.append(row);
    return row;
  }

  /** The list of models could not be loaded: why, and a Retry that calls `again()`. */
  manifestFailed(error, again) {
    this.container.replaceChildren(h("div", { class: "flex flex-wrap items-center gap-x-3", dataset: { testid: "download-manifest", state: "error" } },
      h("span", {}, `The list of models could not be loaded: ${error.message ?? error}`),
      button("retry-manifest", () => { this.container.hidden = true; again(); })));
    this.container.hidden = false;
  }
}
