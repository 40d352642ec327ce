// node --test: the page's preprocessing agrees with the independent Python reference (tests/preprocess_reference.py)
// on MNIST digits drawn large, small, off-centre and stretched, and on edge cases; plus its own invariants.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { preprocess, inkBounds, centreOfMass, MODEL_SIZE } from "../../webapp/js/preprocess.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CONTRACT = { mean: 0.1307, std: 0.3081 };
const W = 280, H = 280;

function mnistDigits(count) {
  const dir = process.env.MNIST_DIR || join(ROOT, "..", "shared", "mnist");
  const file = join(dir, "t10k-images-idx3-ubyte.gz");
  assert.ok(existsSync(file), `MNIST test images not found in ${dir}; set MNIST_DIR`);
  const raw = gunzipSync(readFileSync(file));
  return Array.from({ length: count }, (_, i) => raw.subarray(16 + i * 784, 16 + (i + 1) * 784));
}

// Paint a 28x28 digit into a W x H canvas at (left, top), each source pixel becoming sx x sy canvas pixels (bilinear)
function paint(digit, left, top, sx, sy) {
  const gray = new Float32Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const u = (x - left) / sx - 0.5, v = (y - top) / sy - 0.5;
    const u0 = Math.floor(u), v0 = Math.floor(v), fu = u - u0, fv = v - v0;
    const at = (a, b) => (a >= 0 && a < 28 && b >= 0 && b < 28 ? digit[b * 28 + a] / 255 : 0);
    gray[y * W + x] = (1 - fv) * ((1 - fu) * at(u0, v0) + fu * at(u0 + 1, v0)) + fv * ((1 - fu) * at(u0, v0 + 1) + fu * at(u0 + 1, v0 + 1));
  }
  return gray;
}

function cases() {
  const digits = mnistDigits(6);
  const list = [
    paint(digits[0], 40, 30, 7, 7),          // large, centred
    paint(digits[1], 0, 0, 3, 3),            // small, top-left corner
    paint(digits[2], 180, 150, 3.5, 4),      // small, bottom-right, slightly stretched
    paint(digits[3], -20, 20, 10, 9),        // cut off by the left edge
    paint(digits[4], 60, 100, 9, 2.5),       // very wide: the longer side is horizontal
    paint(digits[5], 110, 10, 1.5, 9.5),     // very tall and thin
  ];
  const dot = new Float32Array(W * H); dot[150 * W + 77] = 1;
  const line = new Float32Array(W * H); for (let x = 30; x < 250; x++) line[140 * W + x] = 0.8;
  const faint = new Float32Array(W * H).fill(0.05);   // below the ink threshold: empty
  return [...list, dot, line, faint, new Float32Array(W * H)];
}

test("agrees with the Python reference within 1e-3", () => {
  const inputs = cases();
  const dir = mkdtempSync(join(tmpdir(), "preprocess-"));
  const spec = join(dir, "cases.json");
  writeFileSync(spec, JSON.stringify({ ...CONTRACT, cases: inputs.map((g) => ({ width: W, height: H, gray: Array.from(g) })) }));
  const python = process.env.PYTHON || "python3";
  const reference = JSON.parse(execFileSync(python, [join(ROOT, "tests", "preprocess_reference.py"), spec], { maxBuffer: 1 << 28 }));
  assert.equal(reference.length, inputs.length);
  inputs.forEach((gray, i) => {
    const ours = preprocess(gray, W, H, CONTRACT);
    if (reference[i] === null) { assert.equal(ours, null, `case ${i} should be empty`); return; }
    assert.ok(ours, `case ${i} should not be empty`);
    let worst = 0;
    for (let j = 0; j < 784; j++) {
      worst = Math.max(worst, Math.abs(ours.image[j] - reference[i].image[j]), Math.abs(ours.input[j] - reference[i].input[j]));
    }
    assert.ok(worst < 1e-3, `case ${i}: max abs diff ${worst}`);
  });
});

test("the digit fits a 20 px box and its centre of mass lands at (14, 14)", () => {
  for (const gray of cases().slice(0, 6)) {
    const { image } = preprocess(gray, W, H, CONTRACT);
    const b = inkBounds(image, MODEL_SIZE, MODEL_SIZE, 0);
    assert.ok(Math.max(b.x1 - b.x0, b.y1 - b.y0) <= 21);
    const [cy, cx] = centreOfMass(image, MODEL_SIZE, MODEL_SIZE);
    assert.ok(Math.abs(cy - 14) <= 0.5 && Math.abs(cx - 14) <= 0.5, `centre (${cy}, ${cx})`);
  }
});

test("where and how big a digit is drawn does not matter", () => {
  const [digit] = mnistDigits(1);
  const a = preprocess(paint(digit, 20, 20, 8, 8), W, H, CONTRACT).image;
  const b = preprocess(paint(digit, 150, 160, 4, 4), W, H, CONTRACT).image;
  let diff = 0;
  for (let i = 0; i < 784; i++) diff += Math.abs(a[i] - b[i]);
  assert.ok(diff / 784 < 0.03, `mean abs difference ${diff / 784}`);
});

test("normalises with the contract's mean and std", () => {
  const out = preprocess(cases()[0], W, H, { mean: 0.5, std: 2 });
  for (let i = 0; i < 784; i++) assert.ok(Math.abs(out.input[i] - (out.image[i] - 0.5) / 2) < 1e-6);
});

test("an empty canvas gives no input", () => {
  assert.equal(preprocess(new Float32Array(W * H), W, H, CONTRACT), null);
});
