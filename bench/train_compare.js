// Training speed, same network, same optimizer, same batch, same digits: the exporter's "fit" step (forward in training
// mode, cross-entropy, backward and Adam, as tinygrad generated them) on our two backends, against TensorFlow.js
// training the same architecture with its own autodiff and Adam on each of its backends. Used by train_compare.html in
// Chromium (bench_train_page.py) and by bench_gpu.mjs in Node.
import { device, wasmThreads } from "./compare.js";
import { openModel } from "../webapp/js/runtime/index.js";

const MODELS = new URL("../webapp/", import.meta.url);

/** The trainer network of mnist_mlp.py or mnist_convnet.py (ReLU) in TF.js ops: its variables (tinygrad's
 *  initialisation: uniform in ±1/sqrt(fan in), batch norm's scale 1 and shift 0) and its forward in training mode
 *  (batch norm on the batch's statistics). NHWC, where tinygrad is NCHW: the same network. */
function tfNetwork(tf, model) {
  const uniform = (shape, fanIn) => tf.variable(tf.randomUniform(shape, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn)));
  if (model.width) {
    if (model.act !== "relu" || model.bn || model.dropout) throw new Error("the TF.js MLP here is ReLU without batch norm or dropout");
    const sizes = [784, ...Array(model.depth).fill(model.width), 10];
    const layers = sizes.slice(1).map((out, i) => ({ w: uniform([sizes[i], out], sizes[i]), b: uniform([out], sizes[i]) }));
    const forward = (x) => layers.reduce((h, l, i) => {
      const y = tf.add(tf.matMul(h, l.w), l.b);
      return i < layers.length - 1 ? tf.relu(y) : y;
    }, tf.reshape(x, [-1, 784]));
    return { forward, variables: layers.flatMap((l) => [l.w, l.b]) };
  }
  if (model.act !== "relu" || !model.bn || model.dropout || model.gap) throw new Error("the TF.js CNN here is ReLU with batch norm, without dropout or pooling");
  const [w1, w2, w3, w4] = model.widths ?? [model.channels, model.channels, 2 * model.channels, 2 * model.channels];
  const conv = (k, cin, cout) => ({ w: uniform([k, k, cin, cout], k * k * cin), b: uniform([cout], k * k * cin) });
  const norm = (c) => ({ gamma: tf.variable(tf.ones([c])), beta: tf.variable(tf.zeros([c])) });
  const p = { conv1: conv(5, 1, w1), conv2: conv(5, w1, w2), bn1: norm(w2), conv3: conv(3, w2, w3), conv4: conv(3, w3, w4), bn2: norm(w4),
              w: uniform([9 * w4, 10], 9 * w4), b: uniform([10], 9 * w4) };
  const convRelu = (x, { w, b }) => tf.relu(tf.add(tf.conv2d(x, w, 1, "valid"), b));
  const batchNorm = (x, { gamma, beta }) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), gamma), beta);
  };
  const forward = (x) => {
    let h = tf.reshape(x, [-1, 28, 28, 1]);
    h = tf.maxPool(batchNorm(convRelu(convRelu(h, p.conv1), p.conv2), p.bn1), 2, 2, "valid");
    h = tf.maxPool(batchNorm(convRelu(convRelu(h, p.conv3), p.conv4), p.bn2), 2, 2, "valid");
    return tf.add(tf.matMul(tf.reshape(h, [-1, 9 * w4]), p.w), p.b);
  };
  return { forward, variables: [p.conv1, p.conv2, p.conv3, p.conv4].flatMap((l) => [l.w, l.b]).concat([p.bn1, p.bn2].flatMap((n) => [n.gamma, n.beta]), [p.w, p.b]) };
}

/** jax-js (`@jax-js/jax`, its WebAssembly backend: threads where the page is cross-origin isolated) training the same MLP
 *  (ReLU, no batch norm) with Adam written in it (its optimizer package is not on npm), one jitted step: a step function
 *  for `timed`, or an error for networks it is not written for here. */
async function jaxStep(jax, meta, batch, lr) {
  const model = meta.config.model;
  if (model.act !== "relu" || model.bn || model.dropout) throw new Error("the jax-js MLP here is ReLU without batch norm or dropout");
  const { numpy: np, nn, valueAndGrad, jit, tree, random } = jax;
  await jax.init("wasm");
  jax.defaultDevice("wasm");
  const sizes = [784, ...Array(model.depth).fill(model.width), 10], keys = [...random.split(random.key(1), sizes.length - 1)];
  const uniform = (key, shape, fanIn) => random.uniform(key, shape, { minval: -1 / Math.sqrt(fanIn), maxval: 1 / Math.sqrt(fanIn) });
  let params = Object.fromEntries(sizes.slice(1).flatMap((out, i) => [[`w${i}`, uniform(keys[i], [sizes[i], out], sizes[i])], [`b${i}`, np.zeros([out])]]));
  const zeros = () => tree.map((a) => np.zerosLike(a), tree.map((a) => a.ref, params));
  let m = zeros(), v = zeros(), t = 0;
  const loss = (p, x, y) => {   // jax-js moves its arguments: every array used twice is taken with .ref
    let h = x;
    for (let i = 0; i < sizes.length - 1; i++) { h = np.dot(h, p[`w${i}`]).add(p[`b${i}`]); if (i < sizes.length - 2) h = nn.relu(h); }
    return nn.logSoftmax(h).mul(y).sum().mul(-1 / batch);
  };
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const step = jit((p, m, v, x, y, rate, c1, c2) => {
    const [value, g] = valueAndGrad(loss)(tree.map((a) => a.ref, p), x, y), next = [{}, {}, {}];
    for (const k of Object.keys(p)) {
      next[1][k] = m[k].mul(b1).add(g[k].ref.mul(1 - b1));
      next[2][k] = v[k].mul(b2).add(g[k].ref.mul(g[k]).mul(1 - b2));
      next[0][k] = p[k].sub(next[1][k].ref.mul(c1.ref).div(np.sqrt(next[2][k].ref.mul(c2.ref)).add(eps)).mul(rate.ref));
    }
    c1.dispose(); c2.dispose(); rate.dispose();
    return [value, ...next];
  });
  return async ({ x, y }, read) => {
    t += 1;
    const onehot = new Float32Array(batch * 10);
    y.forEach((label, i) => { onehot[i * 10 + label] = 1; });
    const [value, p, m2, v2] = step(params, m, v, np.array(x).reshape([batch, 784]), np.array(onehot).reshape([batch, 10]), np.array(lr),
                                    np.array(1 / (1 - b1 ** t)), np.array(1 / (1 - b2 ** t)));
    [params, m, v] = [p, m2, v2];
    if (!read) { await jax.blockUntilReady(value); value.dispose(); return null; }
    return (await value.data())[0];
  };
}

/** `count` batches of `batch` digits, normalised with the model's mean and std, cycling through `images`/`labels`. */
function batches(meta, images, labels, batch, count) {
  const n = labels.length, out = [];
  for (let k = 0; k < count; k++) {
    const x = new Float32Array(batch * 784), y = new Int32Array(batch);
    for (let j = 0; j < batch; j++) {
      const i = (k * batch + j) % n;
      for (let p = 0; p < 784; p++) x[j * 784 + p] = (images[i * 784 + p] / 255 - meta.mean) / meta.std;
      y[j] = labels[i];
    }
    out.push({ x, y });
  }
  return out;
}

/** { name: { backend: { msPerStep, samplesPerSecond, firstLoss, lastLoss, steps } | { error } } }: `steps` timed steps (after
 *  `warmup` untimed ones) of
 *  each trainer model on our backends ("ours-webgpu", "ours-wasm": the loss read back as the page does, every step on
 *  WebAssembly and every 8th on WebGPU) and on each TF.js backend in `tfBackends` (the loss read every 8th step).
 *  `bytes(url)` reads a file; `gpu` is a GPUDevice or null; `images` (u8, 784 per digit) and `labels` (u8) MNIST digits. */
export async function trainCompare({ names, steps, warmup = 3, images, labels, tf, gpu, bytes, tfBackends, wasm = { threads: 1, fma: false }, jax = null }) {
  const results = {};
  for (const name of names) {
    const meta = JSON.parse(new TextDecoder().decode(await bytes(new URL(`${name}/${name}.json`, MODELS))));
    const model = await openModel(meta, { base: new URL(`${name}/`, MODELS), fetchFile: (url) => bytes(url) }), batch = meta.fit.batch, lr = meta.fit.lr;
    const data = batches(meta, images, labels, batch, Math.min(steps + warmup, 32));
    const result = results[name] = {};
    const timed = async (step, every) => {
      const losses = [];
      for (let i = 0; i < warmup; i++) losses.push(await step(data[i % data.length], true));
      const start = performance.now();
      for (let i = 0; i < steps; i++) {
        const loss = await step(data[(warmup + i) % data.length], i % every === 0 || i === steps - 1);
        if (loss !== null) losses.push(loss);
      }
      const ms = (performance.now() - start) / steps;
      if (!losses.every(Number.isFinite)) throw new Error(`the loss is not finite: ${losses.at(-1)}`);
      return { msPerStep: ms, samplesPerSecond: (1000 * batch) / ms, firstLoss: losses[0], lastLoss: losses.at(-1), steps };
    };
    for (const backend of ["webgpu", "wasm"]) {
      try {
        if (backend === "webgpu" && !gpu) throw new Error("no WebGPU adapter");
        const run = await model.load(backend === "wasm" ? "wasm" : gpu, { weights: null, ...wasm });
        await run.init(1);
        result[`ours-${backend}`] = await timed(async ({ x, y }, read) => (await run.fit(x, y, lr, { read }))?.loss ?? null, backend === "wasm" ? 1 : 8);
      } catch (e) { result[`ours-${backend}`] = { error: e.message }; }
    }
    if (jax && meta.config.model.width) {   // the MLP (jax-js's convolutions are not compared here)
      try { result["jax-js-wasm"] = await timed(await jaxStep(jax, meta, batch, lr), 1); }
      catch (e) { result["jax-js-wasm"] = { error: e.message }; }
    }
    for (const backend of tfBackends) {
      let network = null;
      try {
        if (!(await tf.setBackend(backend))) throw new Error("backend failed to initialise");
        await tf.ready();
        network = tfNetwork(tf, meta.config.model);
        const optimizer = tf.train.adam(lr);
        result[`tfjs-${backend}`] = await timed(async ({ x, y }, read) => {
          const cost = tf.tidy(() => optimizer.minimize(() => {
            const logits = network.forward(tf.tensor2d(x, [batch, 784]));
            return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(y, "int32"), 10), logits);
          }, true, network.variables));
          const loss = read ? (await cost.data())[0] : null;
          cost.dispose();
          return loss;
        }, 8);
        optimizer.dispose();
      } catch (e) { result[`tfjs-${backend}`] = { error: e.message }; }
      finally { network?.variables.forEach((v) => v.dispose()); }
    }
  }
  return results;
}

// in the comparison page: TF.js from its script tags, files over HTTP
if (globalThis.document) {
  globalThis.trainCompare = async ({ names, steps, warmup, images, labels, threads = 1 }) => {
    const tf = globalThis.tf;
    tf.wasm.setWasmPaths(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url).href);
    const wasm = wasmThreads(tf, null, threads);
    const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return { wasm, results: await trainCompare({ names, steps, warmup, images: decode(images), labels: decode(labels), tf, gpu: (await device(navigator.gpu))?.device ?? null,
                                                bytes, tfBackends: ["webgpu", "webgl", "cpu", "wasm"], wasm,
                                                jax: await import("../node_modules/@jax-js/jax/dist/index.js") }) };
  };
  globalThis.trainCompareReady = true;
}
