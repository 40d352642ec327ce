// The softmax bar chart: ten bars, the best one highlighted, and a screen-reader table with the same numbers.

export class ProbabilityChart {
  constructor(barsEl, labelsEl, tableBody) {
    this.bars = [];
    this.cells = [];
    for (let d = 0; d < 10; d++) {
      const column = document.createElement("div");
      column.className = "relative flex h-full flex-1 items-end rounded-md bg-slate-100 dark:bg-slate-800";
      column.dataset.testid = `prob-${d}`;
      column.dataset.value = "0";
      const bar = document.createElement("div");
      bar.className = "w-full rounded-md bg-slate-400 transition-[height] duration-75 dark:bg-slate-500";
      bar.style.height = "0%";
      column.append(bar);
      barsEl.append(column);
      const label = document.createElement("span");
      label.className = "flex-1 text-center text-sm font-medium tabular-nums text-slate-600 dark:text-slate-400";
      label.textContent = String(d);
      labelsEl.append(label);
      const row = tableBody.insertRow();
      row.insertCell().textContent = String(d);
      this.cells.push(row.insertCell());
      this.bars.push({ column, bar, label });
    }
  }

  /** probabilities: 10 numbers summing to 1, or null for "nothing to show". */
  update(probabilities) {
    const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    this.bars.forEach(({ column, bar, label }, d) => {
      const p = probabilities ? probabilities[d] : 0;
      column.dataset.value = String(p);
      bar.style.height = `${(p * 100).toFixed(2)}%`;
      const isBest = d === best;
      bar.classList.toggle("bg-indigo-600", isBest);
      bar.classList.toggle("dark:bg-indigo-400", isBest);
      bar.classList.toggle("bg-slate-400", !isBest);
      bar.classList.toggle("dark:bg-slate-500", !isBest);
      label.classList.toggle("text-indigo-700", isBest);
      label.classList.toggle("dark:text-indigo-300", isBest);
      label.classList.toggle("font-bold", isBest);
      this.cells[d].textContent = probabilities ? `${(p * 100).toFixed(1)}%` : "–";
    });
  }
}
