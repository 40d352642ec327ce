// The trainer's charts: data -> pixels, and the thinning that keeps a long training's redraw bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { project, thin } from "../../webapp/js/plot.js";

test("project maps data to the box, y upwards, clamped to the edges", () => {
  const box = { left: 10, top: 5, width: 100, height: 50 };
  assert.deepEqual(project([[0, 0], [50, 1], [100, 2], [200, -1]], box, { xMax: 100, yMin: 0, yMax: 2 }),
                   [[10, 55], [60, 30], [110, 5], [110, 55]]);
});

test("thin keeps each pixel column's lowest and highest point, in order, and nothing else", () => {
  const points = Array.from({ length: 10_000 }, (_, i) => [i, Math.sin(i / 7) + (i === 4321 ? 5 : 0)]);
  const kept = thin(points, 10_000, 100);
  assert.ok(kept.length <= 200 && kept.length >= 100);
  assert.ok(kept.some(([x]) => x === 4321), "a spike survives");
  for (let c = 0; c < 100; c++) {
    const column = points.slice(c * 100, (c + 1) * 100), ys = column.map(([, y]) => y), got = kept.filter(([x]) => Math.floor(x / 100) === c);
    assert.deepEqual(got.map(([, y]) => y).sort((a, b) => a - b), [...new Set([Math.min(...ys), Math.max(...ys)])].sort((a, b) => a - b));
  }
  assert.ok(kept.every((p, i) => i === 0 || kept[i - 1][0] < p[0]), "in x order");
});

test("thin leaves few points as they are", () => {
  const points = [[0, 1], [1, 2], [2, 0]];
  assert.equal(thin(points, 3, 100), points);
});
