/**
 * A bad argument's value, as error messages name it.
 * @module
 */

/** `value` in a few words for an error message: a string quoted, else its kind or its text. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "an array";
  return value === null ? "null" : typeof value === "object" ? "an object" : String(value);
}
