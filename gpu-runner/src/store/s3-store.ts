/**
 * The S3-compatible object store (@aws-sdk/client-s3): AWS S3, R2, MinIO and the like. Configured from
 * the standard AWS environment (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_S3`)
 * plus `EPICACHE_S3_FORCE_PATH_STYLE=1` for servers without virtual-hosted buckets. Checksums are
 * computed and validated only where the protocol requires them (`WHEN_REQUIRED`): several
 * S3-compatible services reject the newer default trailers.
 *
 * Requests time out (5 s to connect, 60 s idle; EPICACHE_S3_TIMEOUT_MS) and are retried by the SDK
 * (AWS_MAX_ATTEMPTS, default 3).
 *
 * Bodies above `multipartThreshold` go up as a multipart upload in parts of `partBytes`, so a stream
 * is never held whole; a failed upload is aborted. Conditional writes use `If-None-Match`/`If-Match`
 * (S3 has honoured both on PutObject and CompleteMultipartUpload since 2024).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { EpicacheError } from "@epicache/shared";
import {
  checkKey,
  checkPrefix,
  checkRange,
  chunksOf,
  collect,
  type GetRange,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from "./object-store";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without a trailing slash ("" for none). */
  prefix?: string;
  /** Overrides of the client configuration (endpoint, region, credentials, forcePathStyle…). */
  client?: S3ClientConfig;
  /** Bodies larger than this go up in parts. Default 16 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart uploads (S3's minimum is 5 MiB for all but the last). Default 8 MiB. */
  partBytes?: number;
}

const MiB = 1 << 20;

/** Client settings from the environment (the SDK reads credentials itself). */
export function s3ClientConfig(env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  return {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    // Without timeouts a stalled connection would hold a rebuild or a question forever: 5 s to
    // connect, and a socket idle for EPICACHE_S3_TIMEOUT_MS (default 60 s) fails (and is retried).
    requestHandler: {
      connectionTimeout: 5000,
      requestTimeout: Number(env.EPICACHE_S3_TIMEOUT_MS) || 60_000,
    },
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: env.EPICACHE_S3_FORCE_PATH_STYLE === "1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly threshold: number;
  private readonly partBytes: number;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? `${options.prefix.replace(/\/+$/, "")}/` : "";
    this.client = new S3Client({ ...s3ClientConfig(), ...options.client });
    this.partBytes = options.partBytes ?? 8 * MiB;
    this.threshold = Math.max(options.multipartThreshold ?? 16 * MiB, this.partBytes);
    this.location = `s3://${this.bucket}/${this.prefix}`;
  }

  private full(key: string): string {
    return this.prefix + checkKey(key);
  }

  async put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: PutOptions = {},
  ): Promise<{ etag: string }> {
    try {
      return await this.upload(key, body, options);
    } catch (e) {
      // S3 answers If-Match on a missing object with 404: the condition failed all the same.
      if (options.ifMatch !== undefined && (e as EpicacheError).code === "store_not_found") {
        throw new EpicacheError(
          "store_conflict",
          `conditional write of ${this.location}${key} refused: it does not exist`,
          { cause: e },
        );
      }
      throw e;
    }
  }

  private async upload(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: PutOptions,
  ): Promise<{ etag: string }> {
    const Key = this.full(key);
    const conditions = { IfNoneMatch: options.ifNoneMatch, IfMatch: options.ifMatch };
    const chunks = chunksOf(body)[Symbol.asyncIterator]();
    // Chunks not yet sent, gathered up to the threshold: a body that fits goes up in one request.
    const queue = new ChunkQueue();
    let done = false;
    const pull = async (): Promise<void> => {
      const next = await chunks.next();
      if (next.done === true) done = true;
      else queue.push(next.value);
    };
    while (!done && queue.size <= this.threshold) await pull();
    if (done) {
      const Body = queue.take(queue.size);
      const out = await this.send(key, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body,
            ContentLength: Body.length,
            ContentType: options.contentType,
            ...conditions,
          }),
        ),
      );
      return { etag: out.ETag ?? "" };
    }
    const created = await this.send(key, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          ContentType: options.contentType,
        }),
      ),
    );
    const UploadId = created.UploadId;
    if (!UploadId)
      throw new EpicacheError(
        "store_unavailable",
        `${this.location}${key}: the server started a multipart upload without an id`,
      );
    try {
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      const upload = async (bytes: Uint8Array) => {
        const PartNumber = parts.length + 1;
        const out = await this.send(key, () =>
          this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key,
              UploadId,
              PartNumber,
              Body: bytes,
              ContentLength: bytes.length,
            }),
          ),
        );
        parts.push({ ETag: out.ETag ?? "", PartNumber });
      };
      // Every part but the last is exactly partBytes; the last takes what remains (1 … 2·partBytes − 1).
      for (;;) {
        while (!done && queue.size < 2 * this.partBytes) await pull();
        if (done && queue.size < 2 * this.partBytes) break;
        await upload(queue.take(this.partBytes));
      }
      if (queue.size > 0) await upload(queue.take(queue.size));
      const out = await this.send(key, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: parts },
            ...conditions,
          }),
        ),
      );
      return { etag: out.ETag ?? "" };
    } catch (e) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }))
        .catch(() => undefined);
      throw e;
    }
  }

  async get(key: string, range?: GetRange): Promise<{ info: ObjectInfo; bytes: Uint8Array }> {
    checkRange(range);
    const { info, body } = await this.open(key, range);
    const bytes = await collect(body);
    return { info, bytes };
  }

  getStream(key: string): Promise<ObjectBody> {
    return this.open(key);
  }

  private async open(key: string, range?: GetRange): Promise<ObjectBody> {
    const Range =
      range === undefined ? undefined : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    const out = await this.send(key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), Range })),
    );
    // Content-Range "bytes a-b/size" carries the whole object's size on a ranged read.
    const total =
      out.ContentRange !== undefined ? Number(out.ContentRange.split("/")[1]) : out.ContentLength;
    const info: ObjectInfo = {
      key,
      size: total ?? 0,
      etag: out.ETag ?? "",
      lastModified: out.LastModified ?? new Date(0),
    };
    const stream = out.Body as AsyncIterable<Uint8Array> | undefined;
    if (stream === undefined || !(Symbol.asyncIterator in stream))
      throw new EpicacheError(
        "store_unavailable",
        `${this.location}${key}: no body in the response`,
      );
    const location = this.location;
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of stream as AsyncIterable<Uint8Array>) yield chunk;
      } catch (e) {
        throw new EpicacheError(
          "store_unavailable",
          `${location}${key}: reading the body failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    return { info, body: body() };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.send(key, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) })),
      );
      return {
        key,
        size: out.ContentLength ?? 0,
        etag: out.ETag ?? "",
        lastModified: out.LastModified ?? new Date(0),
      };
    } catch (e) {
      if ((e as EpicacheError).code === "store_not_found") return null;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    let ContinuationToken: string | undefined;
    do {
      const out = await this.send(prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken,
          }),
        ),
      );
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield {
          key: o.Key.slice(this.prefix.length),
          size: o.Size ?? 0,
          etag: o.ETag ?? "",
          lastModified: o.LastModified ?? new Date(0),
        };
      }
      ContinuationToken = out.IsTruncated === true ? out.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const Objects = keys.slice(i, i + 1000).map((k) => ({ Key: this.full(k) }));
      const out = await this.send(keys[i], () =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects, Quiet: true } }),
        ),
      );
      const failed = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length > 0)
        throw new EpicacheError(
          "store_unavailable",
          `deleting ${failed.length} objects failed: ${failed[0].Key}: ${failed[0].Code} ${failed[0].Message ?? ""}`,
        );
    }
  }

  /** Runs a request, mapping S3's errors to codes. */
  private async send<T>(key: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (e) {
      throw this.mapError(key, e);
    }
  }

  private mapError(key: string, e: unknown): Error {
    if (e instanceof EpicacheError) return e;
    const where = `${this.location}${key}`;
    const status = e instanceof S3ServiceException ? e.$metadata.httpStatusCode : undefined;
    const name = (e as Error)?.name ?? "";
    if (status === 404 || name === "NoSuchKey" || name === "NotFound") {
      if (name === "NoSuchBucket")
        return new EpicacheError("store_unavailable", `${where}: no bucket ${this.bucket}`, {
          cause: e,
        });
      return new EpicacheError("store_not_found", `no object ${where}`, { cause: e });
    }
    if (
      status === 412 ||
      name === "PreconditionFailed" ||
      (status === 409 && name === "ConditionalRequestConflict")
    ) {
      return new EpicacheError(
        "store_conflict",
        `conditional write of ${where} refused (${name})`,
        { cause: e },
      );
    }
    if (status === 416 || name === "InvalidRange")
      return new EpicacheError(
        "invalid_argument",
        `${where}: the byte range is outside the object`,
        { cause: e },
      );
    return new EpicacheError(
      "store_unavailable",
      `${where}: ${name}${status ? ` (HTTP ${status})` : ""}: ${(e as Error)?.message ?? String(e)}`,
      { cause: e },
    );
  }
}

/** Chunks in arrival order; `take(n)` removes the first n bytes as one array. */
class ChunkQueue {
  private chunks: Uint8Array[] = [];
  size = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  take(n: number): Uint8Array {
    if (this.chunks.length > 0 && this.chunks[0].length === n) {
      this.size -= n;
      return this.chunks.shift() as Uint8Array; // length checked just above
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const first = this.chunks[0];
      const k = Math.min(n - filled, first.length);
      out.set(first.subarray(0, k), filled);
      filled += k;
      if (k === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(k);
    }
    this.size -= n;
    return out;
  }
}
