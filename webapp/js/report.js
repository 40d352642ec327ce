// The test-set report, loaded on demand: the confusion matrix of the model on the 10 000 MNIST test digits (written by
// the exporter into <name>.report.json), per-class precision, recall and F1, and the digits it misread. A cell opens its
// digits; a digit is drawn on the canvas, so the visitor can watch the model (and its layers) read it. The view builds
// its own elements in the container it is given (the page's report panel, the trainer's results).

import { h, drawDigit, formatCount } from "./dom.js";

/** The model's report (the runtime's model: its file checked against the metadata's SHA-256 before it is read), with
 *  misread.image(k) giving the k-th misread digit's pixels. */
export async function fetchReport(source) {
  const report = await source.json("report"), raw = atob(report.misread.pixels), pixels = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) pixels[i] = raw.charCodeAt(i);
  report.misread.image = (k) => pixels.subarray(k * 784, (k + 1) * 784);
  return report;
}

/** A report (as the exporter writes it, see evaluation.test_report) of predictions made in the page: `predictions`
 *  and `confidences` (the softmax of each prediction) for digits with `labels`, whose 28x28 images image(i) gives. */
export function reportFrom(predictions, confidences, labels, image) {
  const confusion = Array.from({ length: 10 }, () => new Array(10).fill(0)), misread = { index: [], label: [], pred: [], confidence: [] };
  labels.forEach((label, i) => {
    confusion[label][predictions[i]]++;
    if (predictions[i] !== label) {
      misread.index.push(i); misread.label.push(label); misread.pred.push(predictions[i]); misread.confidence.push(confidences[i]);
    }
  });
  const round = (x) => Math.round(x * 1e4) / 1e4;
  const per_class = confusion.map((row, c) => {
    const tp = row[c], predicted = confusion.reduce((s, r) => s + r[c], 0), actual = row.reduce((a, b) => a + b, 0);
    const precision = tp / Math.max(predicted, 1), recall = tp / Math.max(actual, 1);
    return { precision: round(precision), recall: round(recall), f1: round((2 * precision * recall) / Math.max(precision + recall, 1e-12)), support: actual };
  });
  const right = labels.length - misread.index.length;
  misread.image = (k) => image(misread.index[k]);
  return { accuracy: Math.round((10000 * right) / labels.length) / 100, confusion, per_class, misread };
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;

const note = "text-xs text-slate-600 dark:text-slate-400";

export class ReportView {
  /** Builds the view in `container`; `onPick(pixels)` draws a digit picked in the gallery; `testids` names the matrix and
   *  the gallery for the tests (the page's own report). */
  constructor(container, onPick, { testids = false, label = "Confusion matrix: rows are the true digits, columns what the model read" } = {}) {
    const th = (text, align = "text-right") => h("th", { scope: "col", class: `pr-3 ${align}` }, text);
    Object.assign(this, {
      onPick,
      summary: h("p", { class: "mt-1 text-sm text-slate-600 dark:text-slate-400" }),
      confusion: h("div", { role: "group", "aria-label": label, class: "grid grid-cols-[1.25rem_repeat(10,minmax(0,1fr))] gap-0.5",
                            dataset: testids ? { testid: "confusion" } : {} }),
      table: h("tbody"),
      galleryTitle: h("p", { class: "mt-4 text-sm text-slate-700 dark:text-slate-300", "aria-live": "polite" }),
      gallery: h("div", { class: "mt-2 flex flex-wrap gap-2", dataset: testids ? { testid: "report-gallery" } : {} }),
    });
    container.replaceChildren(this.summary,
      h("div", { class: "mt-4 grid gap-6 lg:grid-cols-[minmax(0,28rem)_1fr]" }, this.confusion,
        h("div", { class: "min-w-0" }, h("table", { class: "text-sm" }, h("caption", { class: `mb-1 text-left ${note}` }, "Per digit, on the 10 000 test digits"),
          h("thead", {}, h("tr", { class: note }, th("Digit", "text-left"), th("Precision"), th("Recall"), th("F1"), th("Digits"))), this.table))),
      this.galleryTitle, this.gallery);
  }

  show(model, report) {
    const total = report.confusion.flat().reduce((a, b) => a + b, 0);
    const errors = report.misread.index.length;
    this.summary.textContent = `${model.meta.architecture}: ${report.accuracy.toFixed(2)}% of ${formatCount(total)} test digits ` +
      `read correctly, ${errors} misread. Rows: the true digit; columns: what the model read. Pick a cell to see its digits.`;
    this.showConfusion(report);
    this.showTable(report);
    this.gallery.replaceChildren();
    this.galleryTitle.textContent = "";
  }

  showConfusion(report) {
    const cells = [], offDiagonalMax = Math.max(1, ...report.confusion.flatMap((row, t) => row.filter((_, p) => p !== t)));
    const header = (text) => Object.assign(document.createElement("div"), { className: "text-center text-[10px] text-slate-500 dark:text-slate-400", textContent: text });
    cells.push(header(""), ...Array.from({ length: 10 }, (_, p) => header(String(p))));
    report.confusion.forEach((row, t) => {
      cells.push(header(String(t)));
      row.forEach((count, p) => {
        const cell = document.createElement("button");
        cell.type = "button";
        Object.assign(cell.dataset, { testid: "confusion-cell", true: String(t), pred: String(p), count: String(count) });
        cell.textContent = String(count);
        cell.setAttribute("aria-label", `true ${t}, read as ${p}: ${count} digit${count === 1 ? "" : "s"}`);
        // diagonal: right answers, in green by share; elsewhere: mistakes, in red by count. Opaque light tints in both
        // colour schemes, so that the dark count stays readable on every cell
        const strength = t === p ? count / Math.max(1, row.reduce((a, b) => a + b, 0)) : count / offDiagonalMax;
        cell.style.background = count === 0 ? "" : `hsl(${t === p ? 152 : 0} 70% ${94 - 32 * strength}%)`;
        cell.className = "aspect-square min-w-0 rounded text-[10px] tabular-nums ring-1 ring-slate-200 focus-visible:outline focus-visible:outline-2 " +
          "focus-visible:outline-indigo-600 sm:text-xs dark:ring-slate-800 " + (count ? "text-slate-900" : "text-slate-500 dark:text-slate-400");
        cell.addEventListener("click", () => this.showCell(report, t, p));
        cells.push(cell);
      });
    });
    this.confusion.replaceChildren(...cells);
  }

  showTable(report) {
    this.table.replaceChildren(...report.per_class.map((c, digit) => h("tr", {}, h("th", { scope: "row", class: "pr-3 text-left font-medium" }, String(digit)),
      ...[pct(c.precision), pct(c.recall), pct(c.f1), c.support].map((v) => h("td", { class: "pr-3 text-right tabular-nums" }, String(v))))));
  }

  showCell(report, t, p) {
    const count = report.confusion[t][p];
    if (t === p) {
      this.galleryTitle.textContent = `${count} test digits ${t} read correctly (only misread digits are kept in the report).`;
      this.gallery.replaceChildren();
      return;
    }
    const picks = report.misread.index.map((_, k) => k).filter((k) => report.misread.label[k] === t && report.misread.pred[k] === p);
    this.galleryTitle.textContent = `${count} test digit${count === 1 ? "" : "s"} ${t} read as ${p}. Pick one to draw it on the canvas.`;
    this.gallery.replaceChildren(...picks.map((k) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "rounded ring-1 ring-slate-300 focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-600 dark:ring-slate-700";
      button.setAttribute("aria-label", `test digit ${report.misread.index[k]}: a ${t} read as ${p} (${pct(report.misread.confidence[k])})`);
      button.title = `test #${report.misread.index[k]}: ${t} read as ${p}, ${pct(report.misread.confidence[k])} sure`;
      const canvas = h("canvas", { width: 28, height: 28, class: "pixelated block h-14 w-14 rounded bg-black" }), pixels = report.misread.image(k);
      drawDigit(canvas, pixels);
      button.append(canvas);
      button.addEventListener("click", () => this.onPick(pixels));
      return button;
    }));
  }
}
