/**
 * Ids that become parts of object keys and database rows (tenant, conversation, version). One rule for
 * all: 1 to 64 characters of ASCII letters, digits, `_`, `-` and `.`, starting with a letter or digit,
 * and never `..`. So an id is never a path segment that climbs (`..`), never empty, never holds a
 * separator, a control character or a Unicode look-alike, and the keys built from it stay short.
 */
import { EpicacheError } from "../errors";

/** What an id names, for error messages. */
export type IdKind = "tenant" | "conversation" | "version";

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * True when `value` is a valid id.
 *
 * @example
 * ```ts
 * isValidId("conv-26"); // true
 * isValidId("../etc"); // false
 * ```
 */
export function isValidId(value: unknown): value is string {
  return typeof value === "string" && ID.test(value) && !value.includes("..");
}

/**
 * `value` if it is a valid id, else an `invalid_argument` error naming the kind and the rule.
 *
 * @example
 * ```ts
 * const tenant = validateId("tenant", params.tenantId); // throws for "a/b", "", "ｃonv" …
 * ```
 */
export function validateId(kind: IdKind, value: unknown): string {
  if (isValidId(value)) return value;
  const shown =
    typeof value === "string"
      ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
      : typeof value;
  throw new EpicacheError(
    "invalid_argument",
    `${kind} id ${shown} is not valid: use 1 to 64 ASCII letters, digits, '_', '-' or '.', starting with a letter or digit, without '..'`,
  );
}

/**
 * A new version id, sortable by time: `v` + UTC time to the millisecond + 6 random hex digits
 * (`v20261128T113400123Z-3fa9c1`).
 *
 * @example
 * ```ts
 * newVersionId(new Date(0), () => 0); // "v19700101T000000000Z-000000"
 * ```
 */
export function newVersionId(now: Date = new Date(), random: () => number = Math.random): string {
  const stamp = now.toISOString().replace(/[-:.]/g, "");
  const suffix = Math.floor(random() * 0x1000000)
    .toString(16)
    .padStart(6, "0");
  return `v${stamp}-${suffix}`;
}
