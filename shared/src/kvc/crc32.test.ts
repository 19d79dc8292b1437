import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32 } from "./crc32";

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The textbook bit-by-bit CRC-32, to check the table-driven one against. */
function bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe("crc32", () => {
  it("gives the published check values (zlib, PNG)", () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(ascii("123456789"))).toBe(0xcbf43926);
    expect(crc32(ascii("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
    expect(crc32(new Uint8Array(32))).toBe(0x190a55ad);
    expect(crc32(new Uint8Array(32).fill(0xff))).toBe(0xff6cab0b);
  });

  it("equals the bitwise definition and continues across any split (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        const at = bytes.length === 0 ? 0 : cut % (bytes.length + 1);
        expect(crc32(bytes)).toBe(bitwise(bytes));
        expect(crc32(bytes.subarray(at))).toBe(bitwise(bytes.subarray(at))); // any alignment
        expect(crc32(bytes.subarray(at), crc32(bytes.subarray(0, at)))).toBe(crc32(bytes));
      }),
    );
  });
});
