(function (global, LIMIT, TOKEN) {
  "use strict";
  // Intrinsics are captured before any script runs, so a script replacing
  // them can break only itself, not the accounting or the result protocol.
  const uncurry = Function.prototype.bind.bind(Function.prototype.call);
  const getter = (target, name) => uncurry(Object.getOwnPropertyDescriptor(target, name).get);
  const construct = Reflect.construct, apply = Reflect.apply, defineProperty = Object.defineProperty;
  const arrayFrom = Array.from, isArray = Array.isArray, min = Math.min, max = Math.max;
  const stringify = JSON.stringify, parse = JSON.parse, fromCharCode = String.fromCharCode;
  const objectTag = uncurry(Object.prototype.toString), exec = uncurry(RegExp.prototype.exec);
  const globalEval = global.eval, promiseResolve = Promise.resolve.bind(Promise);
  const promiseThen = uncurry(Promise.prototype.then);
  const RawU8 = Uint8Array, RawI32 = Int32Array, TypedArray = Object.getPrototypeOf(Uint8Array);
  const BufferPrototype = ArrayBuffer.prototype;
  const viewBytes = getter(TypedArray.prototype, "byteLength");
  const viewLength = getter(TypedArray.prototype, "length");
  const viewBuffer = getter(TypedArray.prototype, "buffer");
  const viewOffset = getter(TypedArray.prototype, "byteOffset");
  const dataViewBytes = getter(DataView.prototype, "byteLength");
  const dataViewBuffer = getter(DataView.prototype, "buffer");
  const dataViewOffset = getter(DataView.prototype, "byteOffset");
  const bufferCapacity = getter(BufferPrototype, "maxByteLength");
  const copyInto = uncurry(TypedArray.prototype.set);
  const toHex = uncurry(RawU8.prototype.toHex), toBase64 = uncurry(RawU8.prototype.toBase64);
  const weakHas = uncurry(WeakSet.prototype.has), weakAdd = uncurry(WeakSet.prototype.add);
  const WeakReference = WeakRef, deref = uncurry(WeakRef.prototype.deref);

  // Timers and finalization callbacks would run JavaScript after main
  // returned, outside any call; WebAssembly and shared memory live outside
  // the heap limit; Atomics.wait would block the isolate.
  for (const name of ["setTimeout", "clearTimeout", "__timer_manager"]) global[name] = undefined;
  delete global.FinalizationRegistry;
  delete global.WebAssembly;
  delete global.SharedArrayBuffer;
  delete Atomics.wait;
  delete Atomics.waitAsync;

  // ArrayBuffer memory is allocated outside the V8 heap, so the isolate's
  // heap limit never sees it: every way of allocating one is counted against
  // the same limit here, and credited back once the garbage collector has
  // freed it. A WeakRef keeps its target alive until the current call ends,
  // so credit arrives on a later call.
  let live = 0, exceeded = false;
  const counted = new WeakSet(), tracked = [];
  function sweep() {
    let kept = 0;
    for (let i = 0; i < tracked.length; i += 2) {
      if (deref(tracked[i]) === undefined) live -= tracked[i + 1];
      else { tracked[kept++] = tracked[i]; tracked[kept++] = tracked[i + 1]; }
    }
    tracked.length = kept;
  }
  function refuse(bytes) {
    if (live + bytes > LIMIT) sweep();
    if (live + bytes > LIMIT) {
      exceeded = true;
      throw new RangeError("Array buffer allocation failed: the script memory limit is reached");
    }
  }
  function isView(value) { try { viewBytes(value); return true; } catch (error) { return false; } }
  function isDataView(value) { try { dataViewBytes(value); return true; } catch (error) { return false; } }
  function isBuffer(value) { try { bufferCapacity(value); return true; } catch (error) { return false; } }
  function count(buffer) {
    if (weakHas(counted, buffer)) return;
    const bytes = bufferCapacity(buffer);
    refuse(bytes);
    live += bytes;
    weakAdd(counted, buffer);
    tracked[tracked.length] = new WeakReference(buffer);
    tracked[tracked.length] = bytes;
  }
  function countResult(value) {
    // Views of up to 64 bytes keep their data inside the V8 heap.
    if (isView(value)) { if (viewBytes(value) > 64) count(viewBuffer(value)); }
    else if (isBuffer(value)) count(value);
    return value;
  }
  function guardConstructor(name, checkArguments) {
    const Original = global[name];
    const Guarded = new Proxy(Original, {
      construct(target, args, newTarget) {
        const checked = checkArguments(args);
        return countResult(construct(target, checked, newTarget === Guarded ? target : newTarget));
      },
    });
    defineProperty(Original.prototype, "constructor", { value: Guarded, writable: true, configurable: true });
    defineProperty(global, name, { value: Guarded, writable: true, configurable: true });
  }
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
                      "Int32Array", "Uint32Array", "Float16Array", "Float32Array", "Float64Array",
                      "BigInt64Array", "BigUint64Array"]) {
    const size = global[name].BYTES_PER_ELEMENT;
    guardConstructor(name, (args) => {
      const source = args[0];
      if (source === null || (typeof source !== "object" && typeof source !== "function")) {
        refuse(Number(source) * size || 0);
        return args;
      }
      if (isBuffer(source)) return args;
      if (isView(source)) { refuse(viewLength(source) * size); return args; }
      // An array-like's length is read once, here, where the heap limit applies.
      const items = arrayFrom(source);
      refuse(items.length * size);
      return [items];
    });
  }
  guardConstructor("ArrayBuffer", (args) => {
    const options = args[1];
    const capacity = options !== null && typeof options === "object" && options.maxByteLength !== undefined
      ? Number(options.maxByteLength) : undefined;
    const length = Number(args[0]);
    refuse(max(length || 0, capacity || 0));
    return capacity === undefined ? [length] : [length, { maxByteLength: capacity }];
  });
  function countReturns(owner, name, estimate) {
    const original = owner[name];
    const wrapper = { [name](...args) {
      if (estimate) refuse(estimate(this, args));
      return countResult(apply(original, this, args));
    } }[name];
    defineProperty(owner, name, { value: wrapper, writable: true, configurable: true });
  }
  for (const name of ["slice", "map", "filter", "toReversed", "toSorted", "with"]) {
    countReturns(TypedArray.prototype, name);
  }
  const newLength = (self, args) => args[0] === undefined ? 0 : Number(args[0]) || 0;
  countReturns(BufferPrototype, "slice");
  countReturns(BufferPrototype, "transfer", newLength);
  countReturns(BufferPrototype, "transferToFixedLength", newLength);
  countReturns(RawU8, "fromBase64");
  countReturns(RawU8, "fromHex");
  const Uint8 = global.Uint8Array, fromBase64 = RawU8.fromBase64, fromHex = RawU8.fromHex;

  // --- SHA-1, SHA-256, SHA-512 (64-bit words as big-endian int32 pairs) ---
  const K512 = new RawI32([
    0x428a2f98, 0xd728ae22, 0x71374491, 0x23ef65cd, 0xb5c0fbcf, 0xec4d3b2f, 0xe9b5dba5, 0x8189dbbc,
    0x3956c25b, 0xf348b538, 0x59f111f1, 0xb605d019, 0x923f82a4, 0xaf194f9b, 0xab1c5ed5, 0xda6d8118,
    0xd807aa98, 0xa3030242, 0x12835b01, 0x45706fbe, 0x243185be, 0x4ee4b28c, 0x550c7dc3, 0xd5ffb4e2,
    0x72be5d74, 0xf27b896f, 0x80deb1fe, 0x3b1696b1, 0x9bdc06a7, 0x25c71235, 0xc19bf174, 0xcf692694,
    0xe49b69c1, 0x9ef14ad2, 0xefbe4786, 0x384f25e3, 0x0fc19dc6, 0x8b8cd5b5, 0x240ca1cc, 0x77ac9c65,
    0x2de92c6f, 0x592b0275, 0x4a7484aa, 0x6ea6e483, 0x5cb0a9dc, 0xbd41fbd4, 0x76f988da, 0x831153b5,
    0x983e5152, 0xee66dfab, 0xa831c66d, 0x2db43210, 0xb00327c8, 0x98fb213f, 0xbf597fc7, 0xbeef0ee4,
    0xc6e00bf3, 0x3da88fc2, 0xd5a79147, 0x930aa725, 0x06ca6351, 0xe003826f, 0x14292967, 0x0a0e6e70,
    0x27b70a85, 0x46d22ffc, 0x2e1b2138, 0x5c26c926, 0x4d2c6dfc, 0x5ac42aed, 0x53380d13, 0x9d95b3df,
    0x650a7354, 0x8baf63de, 0x766a0abb, 0x3c77b2a8, 0x81c2c92e, 0x47edaee6, 0x92722c85, 0x1482353b,
    0xa2bfe8a1, 0x4cf10364, 0xa81a664b, 0xbc423001, 0xc24b8b70, 0xd0f89791, 0xc76c51a3, 0x0654be30,
    0xd192e819, 0xd6ef5218, 0xd6990624, 0x5565a910, 0xf40e3585, 0x5771202a, 0x106aa070, 0x32bbd1b8,
    0x19a4c116, 0xb8d2d0c8, 0x1e376c08, 0x5141ab53, 0x2748774c, 0xdf8eeb99, 0x34b0bcb5, 0xe19b48a8,
    0x391c0cb3, 0xc5c95a63, 0x4ed8aa4a, 0xe3418acb, 0x5b9cca4f, 0x7763e373, 0x682e6ff3, 0xd6b2b8a3,
    0x748f82ee, 0x5defb2fc, 0x78a5636f, 0x43172f60, 0x84c87814, 0xa1f0ab72, 0x8cc70208, 0x1a6439ec,
    0x90befffa, 0x23631e28, 0xa4506ceb, 0xde82bde9, 0xbef9a3f7, 0xb2c67915, 0xc67178f2, 0xe372532b,
    0xca273ece, 0xea26619c, 0xd186b8c7, 0x21c0c207, 0xeada7dd6, 0xcde0eb1e, 0xf57d4f7f, 0xee6ed178,
    0x06f067aa, 0x72176fba, 0x0a637dc5, 0xa2c898a6, 0x113f9804, 0xbef90dae, 0x1b710b35, 0x131c471b,
    0x28db77f5, 0x23047d84, 0x32caab7b, 0x40c72493, 0x3c9ebe0a, 0x15c9bebc, 0x431d67c4, 0x9c100d4c,
    0x4cc5d4be, 0xcb3e42b6, 0x597f299c, 0xfc657e2a, 0x5fcb6fab, 0x3ad6faec, 0x6c44198c, 0x4a475817]);
  // SHA-256's constants are the high halves of SHA-512's first 64.
  const K256 = new RawI32(64);
  for (let i = 0; i < 64; i++) K256[i] = K512[2 * i];
  // One message schedule for every hash: compression never re-enters.
  const w = new RawI32(160);
  function loadWords(block, words) {
    for (let i = 0; i < words; i++) {
      const j = i << 2;
      w[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
    }
  }
  function sha1(h, block) {
    loadWords(block, 16);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (let i = 0; i < 80; i++) {
      const f = i < 20 ? (b & c) | (~b & d) : i < 40 || i >= 60 ? b ^ c ^ d : (b & c) | (b & d) | (c & d);
      const k = i < 20 ? 0x5a827999 : i < 40 ? 0x6ed9eba1 : i < 60 ? 0x8f1bbcdc : 0xca62c1d6;
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) | 0;
      e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0; h[4] = (h[4] + e) | 0;
  }
  function sha256(h, block) {
    loadWords(block, 16);
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
  }
  const CARRY = 0x100000000;
  function add64(h, i, xh, xl) {
    const lo = (h[i + 1] >>> 0) + (xl >>> 0);
    h[i] = (h[i] + xh + ((lo / CARRY) | 0)) | 0; h[i + 1] = lo | 0;
  }
  function sha512(h, block) {
    loadWords(block, 32);
    for (let i = 32; i < 160; i += 2) {
      let xh = w[i - 30], xl = w[i - 29];
      const s0h = ((xh >>> 1) | (xl << 31)) ^ ((xh >>> 8) | (xl << 24)) ^ (xh >>> 7);
      const s0l = ((xl >>> 1) | (xh << 31)) ^ ((xl >>> 8) | (xh << 24)) ^ ((xl >>> 7) | (xh << 25));
      xh = w[i - 4]; xl = w[i - 3];
      const s1h = ((xh >>> 19) | (xl << 13)) ^ ((xl >>> 29) | (xh << 3)) ^ (xh >>> 6);
      const s1l = ((xl >>> 19) | (xh << 13)) ^ ((xh >>> 29) | (xl << 3)) ^ ((xl >>> 6) | (xh << 26));
      const lo = (w[i - 31] >>> 0) + (s0l >>> 0) + (w[i - 13] >>> 0) + (s1l >>> 0);
      w[i] = (w[i - 32] + s0h + w[i - 14] + s1h + ((lo / CARRY) | 0)) | 0; w[i + 1] = lo | 0;
    }
    let ah = h[0], al = h[1], bh = h[2], bl = h[3], ch = h[4], cl = h[5], dh = h[6], dl = h[7];
    let eh = h[8], el = h[9], fh = h[10], fl = h[11], gh = h[12], gl = h[13], hh = h[14], hl = h[15];
    for (let i = 0; i < 160; i += 2) {
      const s1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^ ((el >>> 9) | (eh << 23));
      const s1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^ ((eh >>> 9) | (el << 23));
      let lo = (hl >>> 0) + (s1l >>> 0) + (((el & fl) ^ (~el & gl)) >>> 0) + (K512[i + 1] >>> 0) + (w[i + 1] >>> 0);
      const t1h = (hh + s1h + ((eh & fh) ^ (~eh & gh)) + K512[i] + w[i] + ((lo / CARRY) | 0)) | 0, t1l = lo | 0;
      const s0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^ ((al >>> 7) | (ah << 25));
      const s0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^ ((ah >>> 7) | (al << 25));
      lo = (s0l >>> 0) + (((al & bl) ^ (al & cl) ^ (bl & cl)) >>> 0);
      const t2h = (s0h + ((ah & bh) ^ (ah & ch) ^ (bh & ch)) + ((lo / CARRY) | 0)) | 0, t2l = lo | 0;
      hh = gh; hl = gl; gh = fh; gl = fl; fh = eh; fl = el;
      lo = (dl >>> 0) + (t1l >>> 0); eh = (dh + t1h + ((lo / CARRY) | 0)) | 0; el = lo | 0;
      dh = ch; dl = cl; ch = bh; cl = bl; bh = ah; bl = al;
      lo = (t1l >>> 0) + (t2l >>> 0); ah = (t1h + t2h + ((lo / CARRY) | 0)) | 0; al = lo | 0;
    }
    add64(h, 0, ah, al); add64(h, 2, bh, bl); add64(h, 4, ch, cl); add64(h, 6, dh, dl);
    add64(h, 8, eh, el); add64(h, 10, fh, fl); add64(h, 12, gh, gl); add64(h, 14, hh, hl);
  }
  const ALGORITHMS = {
    __proto__: null,
    sha1: { block: 64, size: 20, compress: sha1,
            iv: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0] },
    sha256: { block: 64, size: 32, compress: sha256,
              iv: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19] },
    sha512: { block: 128, size: 64, compress: sha512,
              iv: [0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b, 0xa54ff53a, 0x5f1d36f1,
                   0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f, 0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179] },
  };
  function algorithm(name) { return ALGORITHMS[String(name).toLowerCase().replace(/-/g, "")]; }

  class Hash {
    constructor(name) {
      const spec = algorithm(name);
      if (!spec) throw new Error("Digest method not supported");
      this._spec = spec; this._h = new RawI32(spec.iv); this._block = new RawU8(spec.block);
      this._used = 0; this._length = 0; this._done = false;
    }
    update(data, encoding) {
      if (this._done) throw new Error("Digest already called");
      absorb(this, bytesOf(data, encoding, "data"));
      return this;
    }
    digest(encoding) {
      if (this._done) throw new Error("Digest already called");
      this._done = true;
      return output(finish(this), encoding);
    }
  }
  function absorb(state, bytes) {
    const block = state._block, size = block.length, compress = state._spec.compress, h = state._h;
    let used = state._used;
    for (let i = 0; i < bytes.length; i++) {
      block[used++] = bytes[i];
      if (used === size) { compress(h, block); used = 0; }
    }
    state._used = used; state._length += bytes.length;
  }
  function finish(state) {
    const spec = state._spec, block = state._block, size = block.length, bits = state._length * 8;
    let used = state._used;
    block[used++] = 0x80;
    // The message length takes the last 8 bytes (16 for SHA-512, high half zero).
    if (used > size - size / 8) { while (used < size) block[used++] = 0; spec.compress(state._h, block); used = 0; }
    while (used < size) block[used++] = 0;
    const high = (bits - (bits >>> 0)) / CARRY, low = bits >>> 0;
    for (let i = 0; i < 4; i++) {
      block[size - 8 + i] = high >>> (24 - 8 * i);
      block[size - 4 + i] = low >>> (24 - 8 * i);
    }
    spec.compress(state._h, block);
    const digest = new RawU8(spec.size);
    for (let i = 0; i < spec.size; i++) digest[i] = state._h[i >> 2] >>> (24 - 8 * (i & 3));
    return digest;
  }
  class Hmac {
    constructor(name, key) {
      const spec = algorithm(name);
      if (!spec) throw new Error("Invalid digest: " + name);
      let secret = bytesOf(key, undefined, "key");
      if (secret.length > spec.block) { const long = new Hash(name); absorb(long, secret); secret = finish(long); }
      this._inner = new Hash(name); this._outer = new Hash(name); this._done = false;
      const pad = new RawU8(spec.block);
      for (let i = 0; i < spec.block; i++) pad[i] = (secret[i] | 0) ^ 0x36;
      absorb(this._inner, pad);
      for (let i = 0; i < spec.block; i++) pad[i] = (secret[i] | 0) ^ 0x5c;
      absorb(this._outer, pad);
    }
    update(data, encoding) {
      if (this._done) throw new Error("Digest already called");
      absorb(this._inner, bytesOf(data, encoding, "data"));
      return this;
    }
    digest(encoding) {
      if (this._done) throw new Error("Digest already called");
      this._done = true;
      absorb(this._outer, finish(this._inner));
      return output(finish(this._outer), encoding);
    }
  }
  function output(digest, encoding) {
    return encoding === undefined || encoding === "buffer" ? Buffer.from(digest) : decode(digest, encoding);
  }
  function timingSafeEqual(a, b) {
    const left = bytesOf(a, undefined, "buf1", false), right = bytesOf(b, undefined, "buf2", false);
    if (left.length !== right.length) {
      const error = new RangeError("Input buffers must have the same byte length");
      error.code = "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH";
      throw error;
    }
    let difference = 0;
    for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
    return difference === 0;
  }

  // --- encodings ---
  const ENCODINGS = { __proto__: null, utf8: "utf8", "utf-8": "utf8", hex: "hex", base64: "base64",
                      base64url: "base64url", latin1: "latin1", binary: "latin1", ascii: "ascii",
                      utf16le: "utf16le", "utf-16le": "utf16le", ucs2: "utf16le", "ucs-2": "utf16le" };
  function encodingName(encoding) {
    if (encoding === undefined || encoding === null) return "utf8";
    const name = ENCODINGS[String(encoding).toLowerCase()];
    if (!name) throw new TypeError("Unknown encoding: " + encoding);
    return name;
  }
  // A byte view over the data of any string, typed array, DataView or ArrayBuffer.
  function bytesOf(value, encoding, what, strings = true) {
    if (typeof value === "string" && strings) return encode(value, encoding);
    if (isView(value)) return new RawU8(viewBuffer(value), viewOffset(value), viewBytes(value));
    if (isDataView(value)) return new RawU8(dataViewBuffer(value), dataViewOffset(value), dataViewBytes(value));
    if (isBuffer(value)) return new RawU8(value);
    const kinds = strings ? "of type string or an instance of" : "an instance of";
    throw new TypeError(`The "${what}" argument must be ${kinds} Buffer, TypedArray, or DataView.`);
  }
  function utf8Length(text) {
    let length = 0;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x80) length += 1;
      else if (code < 0x800) length += 2;
      else if ((code & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { length += 4; i++; }
      else length += 3;
    }
    return length;
  }
  function utf8Encode(text, Type) {
    const out = new Type(utf8Length(text));
    let at = 0;
    for (let i = 0; i < text.length; i++) {
      let code = text.charCodeAt(i);
      if (code < 0x80) { out[at++] = code; continue; }
      if (code < 0x800) { out[at++] = 0xc0 | (code >> 6); out[at++] = 0x80 | (code & 63); continue; }
      if ((code & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        code = 0x10000 + ((code - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
        out[at++] = 0xf0 | (code >> 18); out[at++] = 0x80 | ((code >> 12) & 63);
      } else {
        // A lone surrogate cannot be encoded; WHATWG and Node write U+FFFD.
        if ((code & 0xf800) === 0xd800) code = 0xfffd;
        out[at++] = 0xe0 | (code >> 12);
      }
      out[at++] = 0x80 | ((code >> 6) & 63); out[at++] = 0x80 | (code & 63);
    }
    return out;
  }
  function utf8Decode(bytes, fatal) {
    let text = "", codes = [];
    for (let i = 0; i < bytes.length;) {
      const lead = bytes[i];
      let code = 0xfffd, used = 1;
      if (lead < 0x80) code = lead;
      else {
        let need = 0, low = 0x80, high = 0xbf, value = 0;
        if (lead >= 0xc2 && lead <= 0xdf) { need = 1; value = lead & 0x1f; }
        else if (lead >= 0xe0 && lead <= 0xef) {
          need = 2; value = lead & 0xf;
          if (lead === 0xe0) low = 0xa0;
          if (lead === 0xed) high = 0x9f;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
          need = 3; value = lead & 7;
          if (lead === 0xf0) low = 0x90;
          if (lead === 0xf4) high = 0x8f;
        }
        let seen = 0;
        while (seen < need && i + 1 + seen < bytes.length) {
          const next = bytes[i + 1 + seen];
          if (next < low || next > high) break;
          value = (value << 6) | (next & 63); low = 0x80; high = 0xbf; seen++;
        }
        // An invalid sequence becomes one U+FFFD per maximal subpart, as in WHATWG.
        if (need && seen === need) { code = value; used = need + 1; } else used = 1 + seen;
        if (code === 0xfffd && fatal) throw new TypeError("The encoded data was not valid for encoding utf-8");
      }
      i += used;
      if (code > 0xffff) { code -= 0x10000; codes.push(0xd800 | (code >> 10), 0xdc00 | (code & 0x3ff)); }
      else codes.push(code);
      if (codes.length >= 8192) { text += apply(fromCharCode, undefined, codes); codes = []; }
    }
    return text + apply(fromCharCode, undefined, codes);
  }
  function charCodes(bytes, mask) {
    let text = "";
    for (let start = 0; start < bytes.length; start += 8192) {
      const codes = [];
      for (let i = start; i < min(start + 8192, bytes.length); i++) codes.push(bytes[i] & mask);
      text += apply(fromCharCode, undefined, codes);
    }
    return text;
  }
  function asBuffer(view) { return new Buffer(viewBuffer(view), viewOffset(view), viewBytes(view)); }
  function encode(text, encoding) {
    switch (encodingName(encoding)) {
      case "utf8": return utf8Encode(text, Buffer);
      // Node decodes leniently: hex up to the first bad pair, base64 in either
      // alphabet, ignoring characters outside it and missing padding.
      case "hex": return asBuffer(apply(fromHex, RawU8, [exec(/^(?:[0-9a-fA-F]{2})*/, text)[0]]));
      case "base64": case "base64url": {
        let digits = text.replace(/[^A-Za-z0-9+/\-_=]/g, "").split("=")[0].replace(/-/g, "+").replace(/_/g, "/");
        if (digits.length % 4 === 1) digits = digits.slice(0, -1);
        return asBuffer(apply(fromBase64, RawU8, [digits, { lastChunkHandling: "loose" }]));
      }
      case "utf16le": {
        const out = new Buffer(text.length * 2);
        for (let i = 0; i < text.length; i++) {
          const code = text.charCodeAt(i);
          out[2 * i] = code; out[2 * i + 1] = code >> 8;
        }
        return out;
      }
      default: {
        const out = new Buffer(text.length);
        for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
        return out;
      }
    }
  }
  function decode(bytes, encoding) {
    switch (encodingName(encoding)) {
      case "utf8": return utf8Decode(bytes, false);
      case "hex": return toHex(bytes);
      case "base64": return toBase64(bytes);
      case "base64url": return toBase64(bytes, { alphabet: "base64url", omitPadding: true });
      case "latin1": return charCodes(bytes, 0xff);
      case "ascii": return charCodes(bytes, 0x7f);
      default: {
        let text = "";
        for (let i = 0; i + 1 < bytes.length; i += 2) text += fromCharCode(bytes[i] | (bytes[i + 1] << 8));
        return text;
      }
    }
  }

  // Node's Buffer is a Uint8Array subclass; this is the subset signature checks use.
  class Buffer extends Uint8 {
    static from(value, encodingOrOffset, length) {
      if (typeof value === "string") return encode(value, encodingOrOffset);
      if (isBuffer(value)) return new Buffer(value, encodingOrOffset, length);
      if (isView(value) || isDataView(value)) {
        const source = bytesOf(value), copy = new Buffer(source.length);
        copyInto(copy, source);
        return copy;
      }
      if (value !== null && typeof value === "object") return new Buffer(arrayFrom(value));
      throw new TypeError("The first argument must be of type string or an instance of Buffer, ArrayBuffer, " +
                          "or Array or an Array-like Object.");
    }
    static alloc(size, fill, encoding) {
      const out = new Buffer(size);
      if (fill === undefined || fill === 0) return out;
      if (typeof fill === "number") { for (let i = 0; i < out.length; i++) out[i] = fill; return out; }
      const pattern = bytesOf(fill, encoding, "fill");
      if (pattern.length) for (let i = 0; i < out.length; i++) out[i] = pattern[i % pattern.length];
      return out;
    }
    static allocUnsafe(size) { return Buffer.alloc(size); }
    static byteLength(value, encoding) {
      if (typeof value !== "string") return bytesOf(value, undefined, "string", false).length;
      return encodingName(encoding) === "utf8" ? utf8Length(value) : encode(value, encoding).length;
    }
    static isBuffer(value) { return value instanceof Buffer; }
    static isEncoding(encoding) {
      return typeof encoding === "string" && ENCODINGS[encoding.toLowerCase()] !== undefined;
    }
    static concat(list, totalLength) {
      const parts = arrayFrom(list, (part) => bytesOf(part, undefined, "list", false));
      let total = 0;
      for (const part of parts) total += part.length;
      const out = new Buffer(totalLength === undefined ? total : totalLength);
      let at = 0;
      for (const part of parts) {
        if (at >= out.length) break;
        const take = min(part.length, out.length - at);
        copyInto(out, take === part.length ? part : new RawU8(viewBuffer(part), viewOffset(part), take), at);
        at += take;
      }
      return out;
    }
    static compare(a, b) { return compareBytes(a, b); }
    toString(encoding, start, end) {
      const length = viewLength(this);
      start = max(0, min(length, start | 0));
      end = end === undefined ? length : max(start, min(length, end | 0));
      return decode(new RawU8(viewBuffer(this), viewOffset(this) + start, end - start), encoding);
    }
    equals(other) { return compareBytes(this, other) === 0; }
    // Node's Buffer#slice is a view, unlike Uint8Array#slice.
    slice(start, end) { return this.subarray(start, end); }
    toJSON() { return { type: "Buffer", data: arrayFrom(this) }; }
  }
  function compareBytes(a, b) {
    const left = bytesOf(a, undefined, "buf1", false), right = bytesOf(b, undefined, "buf2", false);
    for (let i = 0; i < min(left.length, right.length); i++) {
      if (left[i] !== right[i]) return left[i] < right[i] ? -1 : 1;
    }
    return left.length < right.length ? -1 : left.length > right.length ? 1 : 0;
  }

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") { return utf8Encode(String(input), Uint8); }
  }
  class TextDecoder {
    constructor(label = "utf-8", options = {}) {
      if (!/^\s*(utf-?8|unicode-1-1-utf-8)\s*$/i.test(String(label))) {
        throw new RangeError(`The "${label}" encoding is not supported`);
      }
      this._fatal = Boolean(options && options.fatal); this._ignoreBOM = Boolean(options && options.ignoreBOM);
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this._fatal; }
    get ignoreBOM() { return this._ignoreBOM; }
    decode(input) {
      if (input === undefined) return "";
      let bytes = bytesOf(input, undefined, "input", false);
      if (!this._ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
        bytes = new RawU8(viewBuffer(bytes), viewOffset(bytes) + 3, bytes.length - 3);
      }
      return utf8Decode(bytes, this._fatal);
    }
  }
  function invalidCharacter(message) {
    const error = new Error(message);
    error.name = "InvalidCharacterError";
    return error;
  }
  function atob(data) {
    let text = String(data).replace(/[\t\n\f\r ]/g, "");
    if (text.length % 4 === 0) text = text.replace(/={1,2}$/, "");
    if (text.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(text)) {
      throw invalidCharacter("The string to be decoded is not correctly encoded.");
    }
    return charCodes(apply(fromBase64, RawU8, [text, { lastChunkHandling: "loose" }]), 0xff);
  }
  function btoa(data) {
    const text = String(data);
    if (/[^\u0000-\u00ff]/.test(text)) throw invalidCharacter("Invalid character");
    return toBase64(encode(text, "latin1"));
  }
  const crypto = {
    createHash: (name) => new Hash(name),
    createHmac: (name, key) => new Hmac(name, key),
    timingSafeEqual,
    getHashes: () => ["sha1", "sha256", "sha512"],
  };
  for (const [name, value] of Object.entries({ Buffer, crypto, TextEncoder, TextDecoder, atob, btoa })) {
    defineProperty(global, name, { value, writable: true, configurable: true });
  }

  // --- the call protocol used by script_engine.py ---
  // Non-writable and non-configurable: a script can neither replace these
  // bindings nor shadow them with a top-level declaration.
  const exportsObject = {};
  defineProperty(global, "__kx", { value: exportsObject });
  let entry = null, pending = null;
  function check(token) { if (token !== TOKEN) throw new Error("the script runtime is not available to scripts"); }
  function describe(error) {
    let name = null, message, stack = "";
    try {
      if (error instanceof Error) {
        name = String(error.name); message = String(error.message); stack = String(error.stack);
      } else {
        message = "Uncaught " + String(error);
      }
    } catch (failure) {
      message = "Uncaught exception that cannot be converted to a string";
    }
    const at = exec(/script\.js:(\d+):(\d+)/, stack);
    return { name, message, line: at ? Number(at[1]) : null, column: at ? Number(at[2]) : null };
  }
  function report(value, error, failed) {
    const oom = exceeded;
    if (failed) return stringify({ oom, live, error: describe(error) });
    const tag = value === null ? "null" : isArray(value) ? "array" : typeof value;
    if (tag !== "object") return stringify({ oom, live, invalid: tag });
    const kind = objectTag(value).slice(8, -1);
    if (kind !== "Object") return stringify({ oom, live, invalid: kind });
    let json;
    try {
      json = stringify(value);
    } catch (error) {
      return stringify({ oom, live, unserializable: describe(error) });
    }
    // The result's JSON goes on a line of its own after the report, so the
    // host passes it on unparsed (JSON.stringify never writes a newline).
    // toJSON() may return anything, including undefined; Python checks the type.
    return `{"oom":${oom},"live":${live}}\n${json === undefined ? "null" : json}`;
  }
  defineProperty(global, "__knock", { value: Object.freeze({
    resolve(token) {
      check(token);
      const named = globalEval("typeof main === 'function' ? main : undefined");
      if (typeof exportsObject.main === "function") entry = exportsObject.main;
      else if (named !== undefined) entry = named;
      else if (typeof exportsObject.default === "function") entry = exportsObject.default;
      return entry === null ? "missing" : "ok";
    },
    // A call is one invoke(). It returns the report when main returned (or
    // threw) without a promise, and otherwise "" (never a report), and the
    // promise's jobs fill in the call's state: they run when the evaluation
    // ends, before the host asks settled() for it in an evaluation of its
    // own, so a report still missing then means never. The result is
    // serialised inside invoke() or its promise job, so once the host has it
    // the isolate is idle.
    invoke(token, payload) {
      check(token);
      exceeded = false;
      sweep();
      pending = null;
      let result;
      try {
        result = apply(entry, undefined, [parse(payload)]);
      } catch (error) {
        return report(undefined, error, true);
      }
      const thenable = result !== null && (typeof result === "object" || typeof result === "function");
      if (!thenable || typeof result.then !== "function") return report(result);
      const state = pending = { json: null };
      promiseThen(promiseResolve(result), (value) => { state.json = report(value); },
                  (error) => { state.json = report(undefined, error, true); });
      return "";
    },
    // The report of the promise the last invoke() returned: "" when invoke()
    // returned its report itself, null while the promise is unsettled.
    settled(token) {
      check(token);
      const state = pending;
      pending = null;
      return state === null ? "" : state.json;
    },
  }) });
})
