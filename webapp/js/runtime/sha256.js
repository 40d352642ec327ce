// SHA-256 for the hash checks: the browser's own (crypto.subtle) where the page has it, else FIPS 180-4 in JavaScript,
// so that a check never falls away (crypto.subtle exists only in secure contexts: a page served over plain http from a
// LAN address has WebAssembly but not it).

/** The hex SHA-256 of `bytes`. */
export async function sha256Hex(bytes) {
  const digest = globalThis.crypto?.subtle ? new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)) : sha256(bytes);
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const K256 = Uint32Array.from(("428a2f98 71374491 b5c0fbcf e9b5dba5 3956c25b 59f111f1 923f82a4 ab1c5ed5 d807aa98 12835b01 243185be " +
  "550c7dc3 72be5d74 80deb1fe 9bdc06a7 c19bf174 e49b69c1 efbe4786 0fc19dc6 240ca1cc 2de92c6f 4a7484aa 5cb0a9dc 76f988da 983e5152 " +
  "a831c66d b00327c8 bf597fc7 c6e00bf3 d5a79147 06ca6351 14292967 27b70a85 2e1b2138 4d2c6dfc 53380d13 650a7354 766a0abb 81c2c92e " +
  "92722c85 a2bfe8a1 a81a664b c24b8b70 c76c51a3 d192e819 d6990624 f40e3585 106aa070 19a4c116 1e376c08 2748774c 34b0bcb5 391c0cb3 " +
  "4ed8aa4a 5b9cca4f 682e6ff3 748f82ee 78a5636f 84c87814 8cc70208 90befffa a4506ceb bef9a3f7 c67178f2").split(" "), (h) => parseInt(h, 16));

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

/** The message of `bytes`, padded as FIPS 180-4 says: a 1 bit, zeros, the length in bits (big-endian), to 64 bytes. */
function padded(bytes) {
  const out = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
  out.set(bytes);
  out[bytes.length] = 0x80;
  const tail = new DataView(out.buffer, out.length - 8);
  tail.setUint32(0, Math.floor(bytes.length / 2 ** 29));
  tail.setUint32(4, (bytes.length * 8) >>> 0);
  return out;
}

/** One 64-byte block at `block` of `words` into the state `h`. */
function compress(h, words, block, w) {
  for (let i = 0; i < 16; i++) w[i] = words.getUint32(block + 4 * i);
  for (let i = 16; i < 64; i++) {
    const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3), s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
  }
  let [a, b, c, d, e, f, g, k] = h;
  for (let i = 0; i < 64; i++) {
    const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
    const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
    k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/** SHA-256 in JavaScript: the digest of `bytes` as 32 bytes. */
export function sha256(bytes) {
  const h = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
  const message = padded(bytes), words = new DataView(message.buffer), w = new Uint32Array(64);
  for (let block = 0; block < message.length; block += 64) compress(h, words, block, w);
  const out = new Uint8Array(32), view = new DataView(out.buffer);
  h.forEach((v, i) => view.setUint32(4 * i, v));
  return out;
}
