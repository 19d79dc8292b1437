/**
 * The filesystem object store (the default): key `a/b/c` is the file `ROOT/a/b/c`. Writes go to a
 * temporary file under `ROOT/.tmp/` and are renamed into place, so a reader sees the old object or
 * the new one, never part of one. Every write to a key holds that key's lock file (`ROOT/.tmp/locks/`)
 * while it checks its condition and renames, so conditional writes are atomic across processes on
 * one machine. A lock older than {@link STALE_LOCK_MS} is taken to be a crashed writer's.
 *
 * ETags are size, modification time and inode; a write under the lock moves the modification time
 * forward by at least a millisecond, so two versions of a key never share an ETag even when the
 * kernel's clock is coarse and an inode number is reused.
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fs, type Stats } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { EpicacheError } from "@epicache/shared";
import {
  checkKey,
  checkPrefix,
  checkRange,
  chunksOf,
  type GetRange,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from "./object-store";

const TMP = ".tmp";
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

export class FsObjectStore implements ObjectStore {
  readonly location: string;

  constructor(readonly root: string) {
    this.location = root;
  }

  private path(key: string): string {
    return join(this.root, ...checkKey(key).split("/"));
  }

  async put(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: PutOptions = {},
  ): Promise<{ etag: string }> {
    const path = this.path(key);
    const tmpDir = join(this.root, TMP);
    await fs.mkdir(tmpDir, { recursive: true }).catch(unavailable(this.root));
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(6).toString("hex")}`);
    try {
      const handle = await fs.open(tmp, "w").catch(unavailable(tmp));
      try {
        for await (const chunk of chunksOf(body)) await handle.write(chunk);
      } finally {
        await handle.close();
      }
      return await this.withLock(key, async () => {
        const current = await stat(path);
        if (options.ifNoneMatch === "*" && current !== null) throw conflict(key, "it exists");
        if (
          options.ifMatch !== undefined &&
          (current === null || etagOf(current) !== options.ifMatch)
        ) {
          throw conflict(
            key,
            current === null
              ? "it does not exist"
              : `its ETag is ${etagOf(current)}, not ${options.ifMatch}`,
          );
        }
        // Strictly later than the version it replaces (see the module doc).
        const mtimeMs = Math.max(
          Date.now(),
          current === null ? 0 : Math.floor(current.mtimeMs) + 1,
        );
        await fs.utimes(tmp, mtimeMs / 1000, mtimeMs / 1000);
        await fs.mkdir(dirname(path), { recursive: true });
        await fs.rename(tmp, path);
        const written = await stat(path);
        if (written === null)
          throw new EpicacheError("store_unavailable", `${path} vanished as it was written`);
        return { etag: etagOf(written) };
      });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async get(key: string, range?: GetRange): Promise<{ info: ObjectInfo; bytes: Uint8Array }> {
    checkRange(range);
    const path = this.path(key);
    const handle = await fs.open(path, "r").catch(notFoundOr(key, path));
    try {
      const st = await handle.stat();
      const info = infoOf(key, st);
      const offset = range?.offset ?? 0;
      const length = Math.max(0, Math.min(range?.length ?? st.size, st.size - offset));
      if (range !== undefined && offset >= st.size)
        throw new EpicacheError(
          "invalid_argument",
          `range starts at ${offset}, past the end of ${key} (${st.size} bytes)`,
        );
      const bytes = new Uint8Array(length);
      for (let done = 0; done < length;) {
        const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return { info, bytes };
    } finally {
      await handle.close();
    }
  }

  async getStream(key: string): Promise<ObjectBody> {
    const path = this.path(key);
    const handle = await fs.open(path, "r").catch(notFoundOr(key, path));
    let st: Stats;
    try {
      st = await handle.stat();
    } catch (e) {
      await handle.close();
      throw e;
    }
    // The open handle keeps reading this version even if a writer renames a new one over it; the
    // stream closes it at its end or when the reader stops early.
    const stream = handle.createReadStream({ highWaterMark: 1 << 20 });
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of stream) yield chunk as Uint8Array;
      } finally {
        stream.destroy();
      }
    }
    return { info: infoOf(key, st), body: body() };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const st = await stat(this.path(key));
    return st === null ? null : infoOf(key, st);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    // Walk the deepest directory the prefix names in full.
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? this.root : join(this.root, ...prefix.slice(0, cut).split("/"));
    const found: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw unavailableError(dir, e);
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        const key = relative(this.root, path).split(sep).join("/");
        if (key === TMP || key.startsWith(`${TMP}/`)) continue;
        if (entry.isDirectory()) {
          if (
            prefix.startsWith(`${key}/`) ||
            key.startsWith(prefix) ||
            `${key}/`.startsWith(prefix)
          )
            await walk(path);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const st = await stat(path);
          if (st !== null) found.push(infoOf(key, st));
        }
      }
    };
    await walk(base);
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      const path = this.path(key);
      await this.withLock(key, () => fs.rm(path, { force: true }));
      // Empty directories left behind go too (best effort, up to the root).
      for (
        let dir = dirname(path);
        dir.startsWith(this.root) && dir !== this.root;
        dir = dirname(dir)
      ) {
        try {
          await fs.rmdir(dir);
        } catch {
          break;
        }
      }
    }
  }

  /** Runs `f` holding `key`'s lock file. */
  private async withLock<T>(key: string, f: () => Promise<T>): Promise<T> {
    const dir = join(this.root, TMP, "locks");
    await fs.mkdir(dir, { recursive: true });
    const lock = join(dir, createHash("sha256").update(key).digest("hex").slice(0, 32));
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      try {
        await (await fs.open(lock, "wx")).close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw unavailableError(lock, e);
      }
      const st = await stat(lock);
      if (st !== null && Date.now() - st.mtimeMs > STALE_LOCK_MS) {
        await fs.rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new EpicacheError(
          "store_unavailable",
          `${key} stayed locked for ${LOCK_WAIT_MS / 1000} s (${lock})`,
        );
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      return await f();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }
}

function etagOf(st: Stats): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"`;
}

function infoOf(key: string, st: Stats): ObjectInfo {
  return { key, size: st.size, etag: etagOf(st), lastModified: st.mtime };
}

async function stat(path: string): Promise<Stats | null> {
  try {
    const st = await fs.stat(path);
    return st.isFile() ? st : null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw unavailableError(path, e);
  }
}

function conflict(key: string, why: string): EpicacheError {
  return new EpicacheError("store_conflict", `conditional write of ${key} refused: ${why}`);
}

function unavailableError(path: string, e: unknown): EpicacheError {
  return new EpicacheError("store_unavailable", `${path}: ${(e as Error).message}`, { cause: e });
}

function unavailable(path: string): (e: unknown) => never {
  return (e) => {
    throw unavailableError(path, e);
  };
}

function notFoundOr(key: string, path: string): (e: unknown) => never {
  return (e) => {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR")
      throw new EpicacheError("store_not_found", `no object ${key} (${path})`);
    throw unavailableError(path, e);
  };
}
