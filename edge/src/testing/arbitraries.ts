/**
 * fast-check arbitraries of hostile requests for the edge's fuzz suite: path segments (traversal,
 * encoded slashes, look-alike letters, control characters, over-long, empty), bodies (any JSON,
 * any text, huge text, wrong types) and header values (only what the Fetch API lets a client send:
 * Latin-1 without NUL, CR or LF; ASCII here).
 */
import fc from "fast-check";

/** Path segments that are not plain ids, each as it would appear in a URL. */
export const HOSTILE_SEGMENTS = [
  "",
  ".",
  "..",
  "%2e%2e",
  "%2E%2E",
  ".%2e",
  "%2e",
  "..%2f..%2fv1%2ftenants",
  "a%2Fb",
  "a%2fb",
  "a%5Cb",
  "..%5c..",
  "a/../b",
  "%252e%252e",
  "conv-1%00",
  "conv-1%0a",
  "conv-1%0d%0a",
  "%09conv-1",
  "conv-1%20",
  "%ef%bd%83onv-1", // fullwidth ｃ
  "\uff43onv-1",
  "c%d0%benv-1", // Cyrillic о
  "c\u043env-1",
  "conv\u20131",
  "conv-1\u200b",
  "sh%C9%91red-name",
  "x".repeat(65),
  "x".repeat(5000),
  "%",
  "%zz",
  "%c0%ae%c0%ae",
  "%u002e%u002e",
  "conv-1;x=1",
  "conv-1.json",
  "-conv",
  ".hidden",
];

/**
 * A path segment: a known id (either tenant's), a hostile one, or arbitrary text (raw, where the URL
 * parser percent-encodes what it must, or percent-encoded).
 */
export function pathSegment(knownIds: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...knownIds) },
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,70}$/) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...knownIds),
          fc.constantFrom("/", "%2F", "/..", "/%2e%2e/", "\\", "?", "#", "%3F"),
        )
        .map(([id, tail]) => id + tail),
    },
  );
}

/**
 * A header value: printable ASCII and tabs. (Fetch would take Latin-1 too, but workerd sends it as
 * UTF-8 with a warning per header; the bytes reach the Worker decoded either way.)
 */
export const headerValue: fc.Arbitrary<string> = fc.string({
  unit: fc
    .oneof(
      { weight: 9, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
      { weight: 1, arbitrary: fc.constant(0x09) },
    )
    .map((c) => String.fromCharCode(c)),
  maxLength: 300,
});

/** A huge body: a JSON string of `size` characters, near and over the body limit. */
export const hugeBody: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(10_000, 500_000, (1 << 20) - 16, (1 << 20) + 1, 2_000_000),
    fc.constantFrom("x", "\u00e9", "\u{1F600}"),
  )
  .map(([size, ch]) => JSON.stringify(ch.repeat(Math.floor(size / ch.length))));

/**
 * Any body: no body, JSON of any shape, any text, a huge one, `shaped` (the route's shape with wrong
 * types here and there), or `valid` (what the route takes, with hostile strings inside).
 */
export function body(
  shaped: fc.Arbitrary<unknown>,
  valid?: fc.Arbitrary<unknown>,
): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: valid ? 16 : 0, arbitrary: (valid ?? fc.constant({})).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        "{",
        "[",
        "null",
        "{}",
        "[]",
        '{"__proto__":{"x":1}}',
        '{"constructor":{"prototype":{}}}',
        "\ufeff{}",
        "{}garbage",
        '{"a":1,"a":2}',
      ),
    },
    { weight: 1, arbitrary: hugeBody },
    { weight: 16, arbitrary: shaped.map((v) => JSON.stringify(v)) },
  );
}

/** A value of any JSON type, for a field that expects another. */
export const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 20 }),
  fc.array(fc.jsonValue(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue(), { maxKeys: 3 }),
);

/** A field of the right type usually (12 in 13), the wrong type sometimes. */
export function mostly<T>(right: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 12, arbitrary: right }, { weight: 1, arbitrary: wrongType });
}

/** Usually absent (dropped by JSON.stringify), sometimes a value of any type: an unknown key. */
export const rarelyPresent: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: wrongType },
);

/** A string with the characters that break parsers and stores: lone surrogates, NUL, emoji, RTL. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 50 }),
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.string({
    unit: fc.constantFrom(
      "\ud800",
      "\udfff",
      "\u0000",
      "\u{1F600}",
      "\u202e",
      "'",
      '"',
      "\\",
      "%",
      ";--",
      "\n",
      "\u00e9",
    ),
    maxLength: 20,
  }),
);

/** A content-type header: JSON in its spellings, other types, garbage, or none. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 16, arbitrary: fc.constant("application/json") },
  {
    weight: 3,
    arbitrary: fc.constantFrom<string | undefined>(
      undefined,
      "",
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/problem+json",
      "application/json;",
      "text/plain",
      "text/json",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/octet-stream",
      "*/*",
    ),
  },
  { weight: 1, arbitrary: headerValue },
);
