/**
 * The `Date` header's value (RFC 9110 §6.6.1: an origin server with a clock sends it on its
 * responses), as an IMF-fixdate, made once per second rather than per response.
 * @module
 */

let second = -1;
let value = "";

/** The current time as an IMF-fixdate (`Mon, 07 Dec 2026 00:29:44 GMT`), cached for the second. */
export function httpDate(now: number = Date.now()): string {
  const current = Math.floor(now / 1000);
  if (current !== second) {
    second = current;
    value = new Date(current * 1000).toUTCString();
  }
  return value;
}
