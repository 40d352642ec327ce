// node --test: the one model runtime (webapp/js/runtime/), on its own: safetensors parsing (float32 and float16,
// malformed files), the arena check, run() serialisation and input checks, one hash check per file shared by both
// backends, and the committed models (data: metadata, plan, weights, modules) on WebAssembly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { readSafetensors, writeSafetensors, halfToFloat32, checkArena, serialised, openModel, loadModel, sha256Hex, sha256, ModelFileError, initialWeights,
         randomBits } from "../../webapp/js/runtime/index.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function safetensors(header, data) {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  return bytes;
}
const asBytes = (typed) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);

test("float16 values widen exactly", () => {
  const halves = new Uint16Array([0x0000, 0x8000, 0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x7e00]);
  const f = halfToFloat32(halves);
  assert.deepEqual([...f.slice(0, 4)], [0, -0, 1, -2]);
  assert.equal(f[4], 0.333251953125);
  assert.equal(f[5], 65504);
  assert.equal(f[6], 2 ** -24);                 // subnormals
  assert.equal(f[7], 1023 * 2 ** -24);
  assert.equal(f[8], Infinity);
  assert.equal(f[9], -Infinity);
  assert.ok(Number.isNaN(f[10]));
});

test("float16: a small tensor (widened one by one) and a large one (through the table) agree on every half", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i), table = halfToFloat32(all);
  for (let i = 0; i < 65536; i += 4096) {
    const one = halfToFloat32(all.slice(i, i + 4096));
    assert.deepEqual(asBytes(one), asBytes(table.slice(i, i + 4096)), `halves ${i}..${i + 4095}`);
  }
});

test("safetensors: float32 and float16 tensors come back as float32 bytes", () => {
  const a = new Float32Array([1.5, -2, 3.25]), b = new Uint16Array([0x3c00, 0xc000]);   // 1, -2 as float16
  const data = new Uint8Array(16);
  data.set(asBytes(a), 0);
  data.set(asBytes(b), 12);
  const tensor = readSafetensors(safetensors({
    __metadata__: { model: "x" }, a: { dtype: "F32", shape: [3], data_offsets: [0, 12] }, b: { dtype: "F16", shape: [2], data_offsets: [12, 16] },
  }, data));
  assert.deepEqual([...new Float32Array(tensor("a", 12).slice().buffer)], [1.5, -2, 3.25]);
  assert.deepEqual([...new Float32Array(tensor("b", 8).buffer)], [1, -2]);
});

test("safetensors: malformed files are clear errors", () => {
  const good = safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
  const throwsFile = (fn, pattern) => assert.throws(fn, (e) => e instanceof ModelFileError && pattern.test(e.message));
  throwsFile(() => readSafetensors(new Uint8Array(5)), /truncated/);
  const tooLong = good.slice();
  new DataView(tooLong.buffer).setBigUint64(0, 1n << 40n, true);
  throwsFile(() => readSafetensors(tooLong), /header over 100 MB/);
  new DataView(tooLong.buffer).setBigUint64(0, 1000n, true);
  throwsFile(() => readSafetensors(tooLong), /truncated or not safetensors/);
  const notJson = good.slice();
  notJson[8] = 0x7b; notJson[9] = 0x7b;                                   // "{{"
  throwsFile(() => readSafetensors(notJson), /not valid safetensors JSON/);
  throwsFile(() => readSafetensors(safetensors([1, 2], new Uint8Array(0))), /not a JSON object/);
  const tensor = readSafetensors(good);
  throwsFile(() => tensor("missing", 4), /no tensor "missing"/);
  throwsFile(() => tensor("a", 8), /corrupt tensor "a"/);                  // the plan expects another size
  throwsFile(() => tensor("__metadata__", 4), /no tensor/);
  throwsFile(() => readSafetensors(safetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4))), /truncated/);
  throwsFile(() => readSafetensors(safetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4))), /does not match its shape/);
  throwsFile(() => readSafetensors(safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8))), /data past its last tensor/);
  throwsFile(() => readSafetensors(safetensors({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8))), /overlap or leave gaps/);
  const odd = readSafetensors(safetensors({ a: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)));
  throwsFile(() => odd("a", 8), /corrupt tensor/);
});

test("the arena check rejects overlapping, misaligned and out-of-bounds buffers", () => {
  const ok = [{ name: "a", offset: 0, bytes: 20 }, { name: "b", offset: 32, bytes: 16 }];
  checkArena(ok, 48);
  assert.throws(() => checkArena([{ name: "a", offset: 0, bytes: 40 }, { name: "b", offset: 32, bytes: 16 }], 64), /a and b overlap/);
  assert.throws(() => checkArena([{ name: "a", offset: 8, bytes: 4 }], 64), /misaligned/);
  assert.throws(() => checkArena(ok, 40), /b lies outside/);
});

test("runs are serialised, see a snapshot of their input, and survive a failed run", async () => {
  const order = [];
  let fail = false;
  const run = serialised(async (x) => {
    order.push(`start ${x[0]}`);
    await new Promise((r) => setTimeout(r, 5));
    order.push(`end ${x[0]}`);
    if (fail) { fail = false; throw new Error("boom"); }
    return x[0];
  }, 3, "m");
  const input = new Float32Array([1, 0, 0]);
  const first = run(input);
  input[0] = 2;                                                            // the caller reuses its array at once
  const second = run(input);
  assert.deepEqual(await Promise.all([first, second]), [1, 2]);
  assert.deepEqual(order, ["start 1", "end 1", "start 2", "end 2"]);
  fail = true;
  await assert.rejects(run(new Float32Array([3, 0, 0])), /boom/);
  assert.equal(await run(new Float32Array([4, 0, 0])), 4);
  await assert.rejects(run(new Float32Array(2)), /run\(\) takes a Float32Array\(3\)/);
  await assert.rejects(run([1, 2, 3]), TypeError);
});

// ---- the committed models, on WebAssembly (Node has no WebGPU)

// Node's fetch has no file: URLs; the page's files are read from disk, and every request is counted
const requested = [];
globalThis.fetch = async (url) => {
  requested.push(new URL(url).pathname.split("/").pop());
  try { return new Response(readFileSync(fileURLToPath(new URL(url)))); }
  catch { return new Response(null, { status: 404 }); }
};
const metaUrl = (name) => new URL(`file://${join(ROOT, "webapp", name, `${name}.json`)}`);
const file = (name, key) => {
  const meta = JSON.parse(readFileSync(fileURLToPath(metaUrl(name)), "utf8"));
  return new Uint8Array(readFileSync(join(ROOT, "webapp", name, meta.files[key].name)));
};

test("a committed model runs on WebAssembly in Node and reads MNIST test digits", async () => {
  const model = await openModel(metaUrl("mnist_convnet")), run = await model.load("wasm");
  const dir = process.env.MNIST_DIR || join(ROOT, "..", "shared", "mnist");
  assert.ok(existsSync(join(dir, "t10k-images-idx3-ubyte.gz")), `MNIST not found in ${dir}; set MNIST_DIR`);
  const images = gunzipSync(readFileSync(join(dir, "t10k-images-idx3-ubyte.gz"))), labels = gunzipSync(readFileSync(join(dir, "t10k-labels-idx1-ubyte.gz")));
  let right = 0;
  for (let i = 0; i < 100; i++) {
    const x = Float32Array.from(images.subarray(16 + i * 784, 16 + (i + 1) * 784), (p) => (p / 255 - model.meta.mean) / model.meta.std);
    const logits = await run(x);
    assert.equal(logits.length, 10);
    if (logits.indexOf(Math.max(...logits)) === labels[8 + i]) right++;
  }
  assert.ok(right >= 98, `${right} of 100`);
});

test("loadModel: metadata, plan, weights and module, each downloaded once and only those", async () => {
  requested.length = 0;
  const run = await loadModel(metaUrl("mnist_mlp"), "wasm");
  assert.equal((await run(new Float32Array(784))).length, 10);
  assert.deepEqual(requested.sort(), ["mnist_mlp.json", "mnist_mlp.plan.json", "mnist_mlp.safetensors", "mnist_mlp.wasm"]);
});

test("the same weights given to two loads are hashed once; a changed weights file, plan or module is refused", async () => {
  const digest = crypto.subtle.digest.bind(crypto.subtle);
  let hashed = 0;
  crypto.subtle.digest = (...args) => { hashed++; return digest(...args); };
  try {
    const model = await openModel(metaUrl("mnist_convnet"));
    assert.equal(hashed, 1);                                               // the plan
    const weights = file("mnist_convnet", "weights");
    await model.load("wasm", { weights });
    await model.load("wasm", { weights: Promise.resolve(weights) });
    assert.equal(hashed, 3);                                               // the weights once, the module once
    const changed = weights.slice();
    changed[changed.length - 1] ^= 1;
    await assert.rejects(model.load("wasm", { weights: changed }), (e) => e instanceof ModelFileError && /mnist_convnet.safetensors.*sha256 mismatch/.test(e.message));
  } finally { crypto.subtle.digest = digest; }
  const meta = JSON.parse(readFileSync(fileURLToPath(metaUrl("mnist_convnet")), "utf8"));
  for (const key of ["plan", "wasm"]) {
    const wrong = { ...meta, files: { ...meta.files, [key]: { ...meta.files[key], sha256: "0".repeat(64) } } };
    const opening = openModel(wrong, { base: new URL(".", metaUrl("mnist_convnet")) }).then((m) => m.load("wasm"));
    await assert.rejects(opening, (e) => e instanceof ModelFileError && e.message.includes(meta.files[key].name) && /sha256 mismatch/.test(e.message));
  }
});

test("sha256Hex is the hex SHA-256", async () => {
  assert.equal(await sha256Hex(new TextEncoder().encode("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("the taps program returns every named layer, and its logits are the forward's", async () => {
  const model = await openModel(metaUrl("mnist_mlp")), run = await model.load("wasm");
  const x = Float32Array.from({ length: 784 }, (_, i) => Math.sin(i));
  const plain = await run(x), { logits, taps } = await run(x, { taps: true });
  assert.deepEqual([...logits], [...plain]);
  assert.deepEqual(Object.keys(taps), model.taps.map((t) => t.name));
  for (const t of model.taps) assert.equal(taps[t.name].length, t.shape.reduce((a, b) => a * b, 1));
  assert.deepEqual([...taps.logits], [...plain]);
  assert.ok(taps.hidden1.every((v) => v >= 0));                           // after a ReLU
  const tensors = await model.tensors();
  assert.deepEqual(tensors("layers.1.weight").shape, [model.meta.config.model.width, 784]);   // as the metadata built it
  assert.throws(() => tensors("nope"), /no tensor "nope"/);
});

test("the train program: checked inputs, a step that run() then sees, weights read, written back and replayed exactly", async () => {
  const model = await openModel(metaUrl("mnist_mlp")), run = await model.load("wasm");
  const { batch, trains, lr, steps, yours } = model.train;
  assert.ok(batch > 0 && trains.length > 0 && lr > 0 && steps > 0 && yours > 0 && yours < 1);
  const images = Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i * 0.37)), labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  await assert.rejects(run.train(images.subarray(1), labels, lr), TypeError);
  await assert.rejects(run.train(images, new Int32Array(batch - 1), lr), TypeError);
  await assert.rejects(run.train(images, labels, NaN), TypeError);
  const x = images.slice(0, 784), before = await run(x), start = await run.readWeights();
  assert.deepEqual(Object.keys(start).sort(), [...trains].sort());
  const loss = await run.train(images, labels, lr);
  assert.ok(Number.isFinite(loss) && loss > 0);
  const trained = await run.readWeights(), after = await run(x);
  for (const name of trains) assert.ok(trained[name].some((v, i) => v !== start[name][i]), `${name} did not change`);
  assert.ok(after.some((v, i) => v !== before[i]), "run() does not see the trained weights");
  await run.writeWeights(start);
  assert.deepEqual([...(await run(x))], [...before]);
  await run.resetOptimizer();                                          // the same step from the same start: the same result
  assert.equal(await run.train(images, labels, lr), loss);
  const again = await run.readWeights();
  for (const name of trains) assert.deepEqual([...again[name]], [...trained[name]]);
  await assert.rejects(run.writeWeights({ nope: new Float32Array(1) }), /no weight or optimizer state named "nope"/);
});

test("a written safetensors file reads back exactly, padded so its data is 8-byte aligned", () => {
  const a = Float32Array.from({ length: 6 }, (_, i) => i / 3 - 1), b = Float32Array.of(Math.PI);
  const bytes = writeSafetensors([{ name: "layers.0.weight", shape: [2, 3], data: a }, { name: "b", shape: [1], data: b }], { config: "{}" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  assert.equal(bytes.length, 8 + headerLength + 28);
  const tensor = readSafetensors(bytes);
  assert.deepEqual([...new Float32Array(tensor("layers.0.weight", 24).slice().buffer)], [...a]);
  assert.deepEqual(tensor.shape("layers.0.weight"), [2, 3]);
  assert.deepEqual([...new Float32Array(tensor("b", 4).slice().buffer)], [...b]);
  assert.equal(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))).__metadata__.config, "{}");
  assert.throws(() => writeSafetensors([{ name: "x", shape: [3], data: new Float32Array(2) }]), /does not match its shape/);
});

test("fresh weights: the same seed repeats, another differs, each tensor in its range with a uniform's mean and spread", () => {
  const init = { w: { uniform: [-0.1, 0.1] }, g: { constant: 1 }, z: { constant: 0 } }, sizes = { w: 20000, g: 8, z: 8 };
  const a = initialWeights(init, sizes, 7), again = initialWeights(init, sizes, 7), other = initialWeights(init, sizes, 8);
  assert.deepEqual([...a.w], [...again.w]);
  assert.ok(a.w.some((v, i) => v !== other.w[i]));
  assert.ok(a.g.every((v) => v === 1) && a.z.every((v) => v === 0));
  assert.ok(a.w.every((v) => v >= -0.1 && v < 0.1));
  const mean = a.w.reduce((s, v) => s + v, 0) / a.w.length, std = Math.sqrt(a.w.reduce((s, v) => s + (v - mean) ** 2, 0) / a.w.length);
  assert.ok(Math.abs(mean) < 0.002 && Math.abs(std - 0.2 / Math.sqrt(12)) < 0.001, `${mean} ${std}`);
  const bits = randomBits(1), seen = new Set(Array.from({ length: 1000 }, bits));
  assert.equal(seen.size, 1000);
});

test("the JavaScript SHA-256 (where crypto.subtle is missing) gives FIPS 180-4's vectors and node's digest at every padding boundary", () => {
  const hex = (b) => Buffer.from(b).toString("hex"), ascii = (s) => new TextEncoder().encode(s);
  assert.equal(hex(sha256(new Uint8Array(0))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(hex(sha256(ascii("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(hex(sha256(ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  assert.equal(hex(sha256(new Uint8Array(1_000_000).fill(0x61))), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  for (const n of [1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65_537]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n) & 0xff);
    assert.equal(hex(sha256(bytes)), createHash("sha256").update(bytes).digest("hex"), `${n} bytes`);
  }
});

test("sha256Hex never skips the check: without crypto.subtle it hashes in JavaScript", async () => {
  const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), want = createHash("sha256").update(bytes).digest("hex");
  const subtle = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: {}, configurable: true });   // an insecure context: no crypto.subtle
  try { assert.equal(await sha256Hex(bytes), want); }
  finally { Object.defineProperty(globalThis, "crypto", subtle); }
  assert.equal(await sha256Hex(bytes), want);
});

test("the threads a module serves at most are the metadata's: a load asking for more gets that many", async () => {
  const meta = JSON.parse(readFileSync(fileURLToPath(metaUrl("mnist_mlp")), "utf8"));
  const fewer = { ...meta, wasm_modules: meta.wasm_modules.map((m) => (m.threads > 1 ? { ...m, threads: 2 } : m)) };
  const model = await openModel(fewer, { base: new URL(".", metaUrl("mnist_mlp")) }), run = await model.load("wasm", { threads: 4, fma: false });
  try {
    assert.equal(run.wasm.threads, 2);
    assert.equal((await run(new Float32Array(784))).length, 10);
  } finally { run.close(); }
});

test("int8 weights: each value times its output channel's scale, in float32; missing or bad scales are refused", () => {
  const q = Int8Array.of(127, -127, 5, 0, -3, 64), scale = Float32Array.of(0.01, 0.5);   // 2 channels of 3
  const file = (scales, dtype = "F32") => {
    const data = new Uint8Array(6 + scales.byteLength);
    data.set(asBytes(q), 0);
    data.set(asBytes(scales), 6);
    return safetensors({ w: { dtype: "I8", shape: [2, 3], data_offsets: [0, 6] },
                         "w.scale": { dtype, shape: [scales.length], data_offsets: [6, 6 + scales.byteLength] } }, data);
  };
  const got = new Float32Array(readSafetensors(file(scale))("w", 24).slice().buffer);
  assert.deepEqual([...got], [...q].map((v, i) => Math.fround(v * scale[i < 3 ? 0 : 1])));
  const throwsFile = (bytes, pattern) => assert.throws(() => readSafetensors(bytes)("w", 24), (e) => e instanceof ModelFileError && pattern.test(e.message));
  throwsFile(file(Float32Array.of(0.01)), /no per-channel scales for "w"/);                  // one scale for two channels
  throwsFile(file(Float32Array.of(0.01, 0)), /scales for "w" that are not positive/);
  throwsFile(file(Float32Array.of(0.01, NaN)), /scales for "w" that are not positive/);
  throwsFile(file(Float32Array.of(-0.01, 0.5)), /scales for "w" that are not positive/);
  const noScale = safetensors({ w: { dtype: "I8", shape: [2, 3], data_offsets: [0, 6] } }, asBytes(q));
  throwsFile(noScale, /no per-channel scales for "w"/);
});
