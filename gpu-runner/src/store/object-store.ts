/**
 * The object store episode caches live in: a flat key space of immutable-by-convention objects with
 * ETags, ranged reads and conditional writes. Two implementations: the filesystem (the default, under
 * `.epicache/store`) and S3-compatible services (AWS S3, R2, MinIO…). Keys are `/`-separated segments
 * of ASCII letters, digits, `_`, `-` and `.` (never `.` or `..` alone): every key the episode store
 * builds comes from validated ids.
 *
 * Errors: `store_not_found` (no such object), `store_conflict` (a condition failed),
 * `store_unavailable` (the service failed; retry), `invalid_argument` (a malformed key or range).
 */
import { EpicacheError } from "@epicache/shared";

export interface ObjectInfo {
  key: string;
  size: number;
  /** Opaque; changes whenever the object is replaced. Quoted, as HTTP sends it. */
  etag: string;
  lastModified: Date;
}

export interface PutOptions {
  /** Write only if no object has this key ("*"), or only if the current object has this ETag. */
  ifNoneMatch?: "*";
  ifMatch?: string;
  contentType?: string;
}

export interface GetRange {
  offset: number;
  /** Bytes to read from `offset`; the read is shorter when the object ends first. */
  length: number;
}

export interface ObjectBody {
  info: ObjectInfo;
  /** The body in chunks; read it to the end or call `return()` on its iterator. */
  body: AsyncIterable<Uint8Array>;
}

export interface ObjectStore {
  /** Where it stores, for messages: a directory or `s3://bucket/prefix`. */
  readonly location: string;
  /**
   * Writes an object from bytes or from a stream of chunks (held in parts of a few MiB, never whole).
   * A failed condition is `store_conflict` and leaves the object as it was.
   */
  put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<{ etag: string }>;
  /** The whole object, or a byte range of it. */
  get(key: string, range?: GetRange): Promise<{ info: ObjectInfo; bytes: Uint8Array }>;
  /** The object as a stream. */
  getStream(key: string): Promise<ObjectBody>;
  /** Size and ETag, or null when there is no such object. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes these objects; missing ones are not an error. */
  delete(keys: readonly string[]): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;

/** `key` if it is a valid object key, else `invalid_argument`. */
export function checkKey(key: string): string {
  if (key.length === 0 || key.length > 1024)
    throw new EpicacheError(
      "invalid_argument",
      `object key of ${key.length} characters (1 … 1024)`,
    );
  for (const s of key.split("/")) {
    if (!SEGMENT.test(s) || s === "." || s === "..")
      throw new EpicacheError(
        "invalid_argument",
        `object key ${JSON.stringify(key.slice(0, 200))} has an invalid segment ${JSON.stringify(s.slice(0, 40))}`,
      );
  }
  return key;
}

/** A prefix to list: a key, a key followed by `/`, or the empty prefix. */
export function checkPrefix(prefix: string): string {
  if (prefix === "") return prefix;
  checkKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix);
  return prefix;
}

export function checkRange(range: GetRange | undefined): void {
  if (range === undefined) return;
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1) {
    throw new EpicacheError(
      "invalid_argument",
      `byte range offset ${offset}, length ${length}: need an offset ≥ 0 and a length ≥ 1`,
    );
  }
}

/** Reads a stream to its end into one array. */
export async function collect(
  body: AsyncIterable<Uint8Array>,
  expected?: number,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of body) {
    chunks.push(c);
    n += c.length;
  }
  if (chunks.length === 1 && (expected === undefined || n === expected)) return chunks[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Normalises a body argument to an async iterable of chunks. */
export async function* chunksOf(
  body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  for await (const c of body as AsyncIterable<Uint8Array>) {
    if (!(c instanceof Uint8Array))
      throw new EpicacheError("invalid_argument", `a body chunk is ${typeof c}, not bytes`);
    if (c.length > 0) yield c;
  }
}
