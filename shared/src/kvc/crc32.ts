/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF): the checksum
 * of zlib, PNG and gzip, so a `.kvc` section can be checked with any of their tools. Pure TypeScript
 * (slicing-by-8 tables, 8 KiB), no `crypto.subtle`: it runs synchronously over streamed chunks.
 */

// TABLES[k·256 + b]: the CRC of byte b followed by k zero bytes (k = 0 … 7), for slicing-by-8.
const TABLES = makeTables();

function makeTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c >>> 0;
    }
  }
  return t;
}

/**
 * The CRC-32 of `bytes`, continuing from `previous` (the CRC of the bytes before them), as an unsigned
 * 32-bit number. `crc32(b, crc32(a))` equals the CRC of `a` followed by `b`, so chunks can be checked
 * as they stream past.
 *
 * @example
 * ```ts
 * crc32(new TextEncoder().encode("123456789")); // 0xcbf43926
 * const ab = crc32(b, crc32(a)); // same as crc32 of the concatenation
 * ```
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  const t = TABLES;
  let c = ~previous;
  let i = 0;
  const n = bytes.length;
  if (LITTLE_ENDIAN && n >= 64) {
    // Bytes up to a 4-byte boundary, then 8 bytes at a time as two little-endian u32 words.
    for (; ((bytes.byteOffset + i) & 3) !== 0; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    const pairs = (n - i) >>> 3;
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, 2 * pairs);
    for (let k = 0; k < w.length; k += 2) c = step8(t, w[k] ^ c, w[k + 1]);
    i += 8 * pairs;
  } else {
    for (; i + 8 <= n; i += 8) {
      const a = (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)) ^ c;
      c = step8(
        t,
        a,
        bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24),
      );
    }
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One slicing-by-8 step: `a` is the first 4 bytes (little-endian) XOR the running CRC, `b` the next 4. */
function step8(t: Uint32Array, a: number, b: number): number {
  return (
    t[1792 + (a & 0xff)] ^
    t[1536 + ((a >>> 8) & 0xff)] ^
    t[1280 + ((a >>> 16) & 0xff)] ^
    t[1024 + (a >>> 24)] ^
    t[768 + (b & 0xff)] ^
    t[512 + ((b >>> 8) & 0xff)] ^
    t[256 + ((b >>> 16) & 0xff)] ^
    t[b >>> 24]
  );
}
