/**
 * The ggml tensor types this runtime reads, with their block geometry. A quantised type stores
 * `blockSize` values in `blockBytes` bytes; plain types have a block of one value.
 */
export const GGML_TYPES = {
  F32: { id: 0, blockSize: 1, blockBytes: 4 },
  F16: { id: 1, blockSize: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockSize: 32, blockBytes: 18 }, // f16 d, 16 bytes of nibbles
  Q4_1: { id: 3, blockSize: 32, blockBytes: 20 }, // f16 d, f16 m, 16 bytes of nibbles
  Q8_0: { id: 8, blockSize: 32, blockBytes: 34 }, // f16 d, 32 int8
  BF16: { id: 30, blockSize: 1, blockBytes: 2 },
} as const;

export type GgmlTypeName = keyof typeof GGML_TYPES;

const BY_ID = new Map<number, GgmlTypeName>(
  (Object.keys(GGML_TYPES) as GgmlTypeName[]).map((name) => [GGML_TYPES[name].id, name]),
);

/** Names of ggml types that exist but that this runtime does not read, for error messages. */
const KNOWN_UNSUPPORTED: Record<number, string> = {
  6: "Q5_0",
  7: "Q5_1",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
};

export function ggmlTypeName(id: number): GgmlTypeName | undefined {
  return BY_ID.get(id);
}

export function describeGgmlType(id: number): string {
  return BY_ID.get(id) ?? KNOWN_UNSUPPORTED[id] ?? `unknown type ${id}`;
}
