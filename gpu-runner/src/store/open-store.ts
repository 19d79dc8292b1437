/** A store from a location the user gives: a directory, or `s3://bucket[/prefix]`. */
import { resolve } from "node:path";
import { EpicacheError } from "@epicache/shared";
import { epicacheHome } from "../paths";
import { FsObjectStore } from "./fs-store";
import type { ObjectStore } from "./object-store";
import { S3ObjectStore, type S3StoreOptions } from "./s3-store";

/** The default store: `$EPICACHE_HOME/store` (`.epicache/store`). */
export function defaultStoreLocation(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(epicacheHome(env), "store");
}

export function openStore(
  location: string,
  s3?: Omit<S3StoreOptions, "bucket" | "prefix">,
): ObjectStore {
  if (location.startsWith("s3://")) {
    const rest = location.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/\/+$/, "");
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
      throw new EpicacheError(
        "invalid_argument",
        `${location}: ${JSON.stringify(bucket)} is not an S3 bucket name`,
      );
    if (prefix !== "" && !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(prefix))
      throw new EpicacheError(
        "invalid_argument",
        `${location}: the prefix must be /-separated segments of letters, digits, '_', '-' and '.'`,
      );
    return new S3ObjectStore({ ...s3, bucket, prefix });
  }
  if (location.includes("://"))
    throw new EpicacheError(
      "invalid_argument",
      `${location}: a store is a directory or s3://bucket/prefix`,
    );
  return new FsObjectStore(resolve(location));
}
