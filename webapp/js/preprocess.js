// MNIST-faithful preprocessing, as NIST/MNIST did it: crop to the ink, scale the longer side to 20 px keeping the
// aspect ratio (area-averaged, so anti-aliased), then place in 28x28 with the centre of mass at pixel (14, 14).
// Pure functions on plain arrays: the page, node's test runner and the Python reference all agree on them.

export const MODEL_SIZE = 28;
export const DIGIT_BOX = 20;
export const TARGET_CENTRE = 14;   // measured on MNIST's test set: mean centre of mass (13.99, 14.01)
export const INK_THRESHOLD = 0.1;  // ignore the faintest anti-aliasing when finding the ink's bounding box

// Round half up, after snapping to 1e-6: an exactly symmetric digit puts its centre on a .5, and float noise must not
// decide which way it goes (the Python reference does the same)
const roundHalfUp = (v) => Math.floor(Math.round(v * 1e6) / 1e6 + 0.5);

/** Bounding box {x0, y0, x1, y1} (x1, y1 exclusive) of pixels above the threshold, or null for an empty image. */
export function inkBounds(gray, width, height, threshold = INK_THRESHOLD) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (gray[row + x] > threshold) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? null : { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

// For each target cell, the source cells it covers and by how much: an exact box filter over [start, start+length)
function coverage(start, length, cells) {
  const step = length / cells, taps = [];
  for (let i = 0; i < cells; i++) {
    const from = start + i * step, to = from + step, cell = [];
    for (let s = Math.floor(from); s < Math.ceil(to); s++) {
      const w = Math.min(to, s + 1) - Math.max(from, s);
      if (w > 1e-12) cell.push([s, w / step]);
    }
    taps.push(cell);
  }
  return taps;
}

/** Area-average the box of `gray` (width wide) down or up to dw x dh. */
export function resampleArea(gray, width, box, dw, dh) {
  const cols = coverage(box.x0, box.x1 - box.x0, dw), rows = coverage(box.y0, box.y1 - box.y0, dh);
  const out = new Float64Array(dw * dh);
  for (let j = 0; j < dh; j++) {
    for (const [sy, wy] of rows[j]) {
      const row = sy * width;
      for (let i = 0; i < dw; i++) {
        let acc = 0;
        for (const [sx, wx] of cols[i]) acc += gray[row + sx] * wx;
        out[j * dw + i] += acc * wy;
      }
    }
  }
  return out;
}

/** Centre of mass [cy, cx] of a w x h image (pixel-index coordinates). */
export function centreOfMass(img, w, h) {
  let mass = 0, sy = 0, sx = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = img[y * w + x];
      mass += v; sy += v * y; sx += v * x;
    }
  }
  return mass > 0 ? [sy / mass, sx / mass] : [(h - 1) / 2, (w - 1) / 2];
}

/**
 * gray: ink intensities in [0, 1] (white digit on black), width x height, row-major.
 * Returns null for an empty drawing, else { image: 28x28 in [0, 1], input: the normalised model input, bounds }.
 */
export function preprocess(gray, width, height, { mean, std }) {
  const bounds = inkBounds(gray, width, height);
  if (!bounds) return null;
  const bw = bounds.x1 - bounds.x0, bh = bounds.y1 - bounds.y0, scale = DIGIT_BOX / Math.max(bw, bh);
  const dw = Math.max(1, roundHalfUp(bw * scale)), dh = Math.max(1, roundHalfUp(bh * scale));
  const digit = resampleArea(gray, width, bounds, dw, dh);
  const [cy, cx] = centreOfMass(digit, dw, dh);
  const oy = roundHalfUp(TARGET_CENTRE - cy), ox = roundHalfUp(TARGET_CENTRE - cx);
  const image = new Float32Array(MODEL_SIZE * MODEL_SIZE);
  for (let y = 0; y < dh; y++) {
    const ty = y + oy;
    if (ty < 0 || ty >= MODEL_SIZE) continue;
    for (let x = 0; x < dw; x++) {
      const tx = x + ox;
      if (tx >= 0 && tx < MODEL_SIZE) image[ty * MODEL_SIZE + tx] = Math.min(1, digit[y * dw + x]);
    }
  }
  return normalised(image, { mean, std }, bounds);
}

/** A 28x28 image already in MNIST's form (a test digit drawn as it is): only the normalisation. */
export function fromMnist(pixels, contract) {
  return normalised(Float32Array.from(pixels, (v) => v / 255), contract, null);
}

function normalised(image, { mean, std }, bounds) {
  const input = new Float32Array(image.length);
  for (let i = 0; i < image.length; i++) input[i] = (image[i] - mean) / std;
  return { image, input, bounds };
}
