/**
 * Reading one member out of a zip archive (wheels are zips): the end-of-central-directory record,
 * the central directory, then the member's local header and its stored or deflated bytes.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { inflateRawSync } from "node:zlib";
import { EpicacheError } from "@epicache/shared";

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

function readAt(fd: number, offset: number, length: number): Buffer {
  // A corrupt directory can name any length: check it against the file before allocating.
  if (offset < 0 || offset + length > fstatSync(fd).size) {
    throw new EpicacheError(
      "invalid_argument",
      `zip archive is corrupt: ${length} bytes at ${offset} lie beyond its end`,
    );
  }
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0)
      throw new EpicacheError(
        "model_checksum_mismatch",
        `zip archive ends early (at ${offset + done})`,
      );
    done += n;
  }
  return buf;
}

export function listZip(path: string): ZipEntry[] {
  const fd = openSync(path, "r");
  try {
    return entries(fd, path);
  } finally {
    closeSync(fd);
  }
}

function entries(fd: number, path: string): ZipEntry[] {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = readAt(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new EpicacheError("invalid_argument", `${path} is not a zip archive`);
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset + cdSize > size)
    throw new EpicacheError("invalid_argument", `${path}: central directory lies beyond the file`);
  const cd = readAt(fd, cdOffset, cdSize);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50)
      throw new EpicacheError("invalid_argument", `${path}: corrupt central directory`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    out.push({
      method: cd.readUInt16LE(p + 10),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
      name: cd.toString("utf8", p + 46, p + 46 + nameLen),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** The bytes of member `name`. */
export function readZipMember(path: string, name: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const entry = entries(fd, path).find((e) => e.name === name);
    if (!entry) throw new EpicacheError("model_not_found", `${path} has no member ${name}`);
    if (entry.size === 0xffffffff || entry.compressedSize === 0xffffffff) {
      throw new EpicacheError(
        "invalid_argument",
        `${path}: member ${name} needs zip64, which is not supported`,
      );
    }
    const local = readAt(fd, entry.localHeaderOffset, 30);
    if (local.readUInt32LE(0) !== 0x04034b50)
      throw new EpicacheError("invalid_argument", `${path}: corrupt local header for ${name}`);
    const dataStart =
      entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    const raw = readAt(fd, dataStart, entry.compressedSize);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      try {
        return inflateRawSync(raw);
      } catch (e) {
        throw new EpicacheError(
          "invalid_argument",
          `${path}: member ${name} has corrupt deflate data (${e instanceof Error ? e.message : String(e)})`,
          { cause: e },
        );
      }
    }
    throw new EpicacheError(
      "invalid_argument",
      `${path}: member ${name} uses compression method ${entry.method}`,
    );
  } finally {
    closeSync(fd);
  }
}
