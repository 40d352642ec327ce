// Small live line charts on a canvas (the trainer's loss, accuracy and held-out accuracy): a few series against the
// step, a light grid and the axis ends labelled. project() is the pure part, tested in node.

/** Points [[x, y], ...] in data units -> pixels in `box` { left, top, width, height }, x in [0, xMax], y in [yMin, yMax]
 *  (y grows upwards on the chart; values outside are clamped to its edge). */
export function project(points, box, { xMax, yMin, yMax }) {
  const sx = box.width / Math.max(xMax, 1e-9), sy = box.height / Math.max(yMax - yMin, 1e-9);
  return points.map(([x, y]) => [box.left + Math.min(Math.max(x, 0), xMax) * sx,
                                 box.top + box.height - (Math.min(Math.max(y, yMin), yMax) - yMin) * sy]);
}

/** At most two points per pixel column, the column's lowest and highest in the order they came: all that a line
 *  `columns` pixels wide can show of many points, so that a long training redraws in bounded time. */
export function thin(points, xMax, columns) {
  if (points.length <= 2 * columns) return points;
  const out = [];
  let column = null, low = null, high = null;
  const emit = () => { if (low) out.push(...(low === high ? [low] : low[0] <= high[0] ? [low, high] : [high, low])); };
  for (const p of points) {
    const c = Math.min(Math.floor((p[0] / Math.max(xMax, 1e-9)) * columns), columns - 1);
    if (c !== column) { emit(); column = c; low = high = p; continue; }
    if (p[1] < low[1]) low = p;
    if (p[1] > high[1]) high = p;
  }
  emit();
  return out;
}

const css = (canvas, name, fallback) => getComputedStyle(canvas).getPropertyValue(name).trim() || fallback;

/** Draw `series` ([{ points, color, width }]) on `canvas`, sized to its box at the screen's pixel density. */
export function plot(canvas, { series, xMax, yMin = 0, yMax, yTicks = [], label = "" }) {
  const dpr = window.devicePixelRatio || 1, { width, height } = canvas.getBoundingClientRect();
  if (!width || !height) return;
  // a canvas whose size is set is cleared and reallocated: only when its box changed
  if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
  if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const box = { left: 30, top: 6, width: width - 36, height: height - 20 }, text = css(canvas, "--plot-text", "#64748b");
  ctx.font = "10px ui-sans-serif, system-ui, sans-serif";
  ctx.fillStyle = ctx.strokeStyle = text;
  ctx.lineWidth = 1;
  ctx.globalAlpha = 0.3;
  for (const y of yTicks) {
    const [[, py]] = project([[0, y]], box, { xMax, yMin, yMax });
    ctx.beginPath(); ctx.moveTo(box.left, py); ctx.lineTo(box.left + box.width, py); ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.textAlign = "right";
  for (const y of yTicks) ctx.fillText(String(y), box.left - 4, project([[0, y]], box, { xMax, yMin, yMax })[0][1] + 3);
  ctx.textAlign = "left";
  ctx.fillText(label, box.left, height - 4);
  ctx.textAlign = "right";
  ctx.fillText(`step ${Math.round(xMax)}`, box.left + box.width, height - 4);
  for (const { points, color, width: lineWidth = 1.5 } of series) {
    if (!points.length) continue;
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.beginPath();
    project(thin(points, xMax, Math.ceil(box.width)), box, { xMax, yMin, yMax }).forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
  }
}
