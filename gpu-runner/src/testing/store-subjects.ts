/**
 * The object stores every store suite runs against: the filesystem store in a temporary directory,
 * and the S3 store on a fresh bucket of a real S3 protocol server on loopback (undefined, so the
 * suite skips, when that server is not installed; see s3-server.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { FsObjectStore, S3ObjectStore, type ObjectStore } from "../store";
import { startS3Server, type S3TestServer } from "./s3-server";

export interface StoreSubject {
  name: string;
  /** A new, empty store; undefined when this kind cannot run here. */
  open: () => Promise<ObjectStore | undefined>;
  /** Removes what `open` made (directories, the server). */
  close: () => Promise<void>;
  multipart: boolean;
}

export const SKIP_S3 = "no S3 test server (npx tsx tools/s3-test-server.ts install)";

export function storeSubjects(options: { partBytes?: number } = {}): StoreSubject[] {
  const dirs: string[] = [];
  let server: S3TestServer | undefined;
  let started = false;
  let buckets = 0;
  return [
    {
      name: "filesystem",
      multipart: false,
      open: async () => {
        const dir = mkdtempSync(join(tmpdir(), "epicache-store-"));
        dirs.push(dir);
        return new FsObjectStore(dir);
      },
      close: async () => {
        for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
      },
    },
    {
      name: "S3 (loopback server)",
      multipart: true,
      open: async () => {
        if (!started) {
          started = true;
          server = await startS3Server();
        }
        if (server === undefined) return undefined;
        const bucket = `suite-${process.pid}-${++buckets}`;
        const partBytes = options.partBytes ?? 5 << 20;
        const store = new S3ObjectStore({
          bucket,
          prefix: "p/q",
          client: server.client,
          partBytes,
          multipartThreshold: partBytes,
        });
        await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
        return store;
      },
      close: async () => {
        await server?.stop();
        server = undefined;
        started = false;
      },
    },
  ];
}
