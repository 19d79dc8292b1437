/** Where episode caches are kept: the object store (filesystem or S3) and versions on top of it. */
export * from "./object-store";
export { FsObjectStore } from "./fs-store";
export { S3ObjectStore, s3ClientConfig, type S3StoreOptions } from "./s3-store";
export { defaultStoreLocation, openStore } from "./open-store";
