/**
 * A web `Request` for a GET or HEAD that is only built when the handler first reads more than its
 * `method` and `url`. It is an instance of `Request` (its prototype chain goes through
 * `Request.prototype`) and every other member of `Request` is answered by the real one, made on
 * first use. Only where the runtime's own `Request` accepts it as the input of `new Request` (and
 * so of `fetch`): Bun does, Deno and Node refuse (their `Request` looks for internal slots), so
 * they always get the real one. Measured on Bun (bench/http.mjs, hello world): building the
 * `Request` (with its `Headers`) per request was 9% of the server's CPU.
 * @module
 */

import type { RequestHead } from "../handshake.ts";
import { webRequest } from "./request.ts";

/**
 * The `Request` for a GET or HEAD without a body at `href`, or null when a lazy one cannot stand
 * in for the real one here: the runtime refuses it as the input of `new Request`, or `href` is not
 * already what the URL parser would make of it (then `url` could not be answered without parsing,
 * and an invalid target must still be refused when the request is made).
 */
export function lazyRequest(head: RequestHead, href: string): Request | null {
  lazyRequestsWork ??= forwardToRequest();
  if (!lazyRequestsWork || !isCanonicalHref(href)) return null;
  return new LazyRequest(head, href) as unknown as Request;
}

/**
 * Whether lazy requests stand in for real ones here; decided on the first request, not on import
 * (touching `Request` on Node loads undici: 40 ms and 3 MB of heap for a server that may serve no
 * plain HTTP at all).
 */
let lazyRequestsWork: boolean | undefined;

/** The real `Request` behind a lazy one, built on first use. */
let realRequest: (lazy: LazyRequest) => Request;

class LazyRequest {
  readonly #head: RequestHead;
  readonly #href: string;
  #request: Request | null = null;

  constructor(head: RequestHead, href: string) {
    this.#head = head;
    this.#href = href;
  }

  static {
    realRequest = (lazy) => lazy.#request ??= webRequest(lazy.#head, lazy.#href, null);
  }

  get method(): string {
    return this.#head.method;
  }

  get url(): string {
    return this.#href;
  }

  /** What `console.log` and `util.inspect` show: the real request. */
  [Symbol.for("nodejs.util.inspect.custom")](): Request {
    return realRequest(this);
  }
}

/**
 * Makes every other member of Request (and of the Body it mixes in) answered by the real one, and
 * tells whether this runtime's `Request` then takes a lazy one as its input, as it takes a real one.
 */
function forwardToRequest(): boolean {
  for (let proto = Request.prototype; proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === "constructor" || key === Symbol.toStringTag || Object.hasOwn(LazyRequest.prototype, key)) {
        continue;
      }
      const { get, set, value } = Object.getOwnPropertyDescriptor(proto, key)!;
      const forward: PropertyDescriptor = { configurable: true, enumerable: false };
      if (typeof value === "function") {
        forward.value = function (this: LazyRequest, ...args: unknown[]) {
          return value.apply(realRequest(this), args);
        };
        forward.writable = true;
      } else {
        if (get) {
          forward.get = function (this: LazyRequest) {
            return get.call(realRequest(this));
          };
        }
        if (set) {
          forward.set = function (this: LazyRequest, to: unknown) {
            set.call(realRequest(this), to);
          };
        }
      }
      Object.defineProperty(LazyRequest.prototype, key, forward);
    }
  }
  Object.setPrototypeOf(LazyRequest.prototype, Request.prototype);
  const head: RequestHead = {
    method: "GET",
    target: "/",
    minorVersion: 1,
    headers: new Map([["host", "a"]]),
    size: 0,
  };
  try {
    return new Request(new LazyRequest(head, "http://a/") as unknown as Request).url === "http://a/";
  } catch {
    return false;
  }
}

/**
 * Whether the URL parser leaves `href` (a scheme, "://", a `Host` and an origin-form target) as it
 * is, judged conservatively: a lower-case domain (no IDNA label, not ending in a number) or a
 * dotted-decimal IPv4 address, a port that is not the default, and a target of characters no URL
 * component escapes, without dot segments or backslashes. Anything else is left to the parser.
 */
export function isCanonicalHref(href: string): boolean {
  const match = CANONICAL.exec(href);
  if (match === null) return false;
  const [, scheme, host, port, path] = match;
  if (port !== undefined && (Number(port) > 65_535 || port === (scheme === "http" ? "80" : "443"))) {
    return false;
  }
  if (path.includes("/.") || ESCAPED_DOT.test(path)) return false;
  const labels = host.split(".");
  if (labels.some((label) => label === "" || label.startsWith("xn--"))) return false;
  if (!NUMERIC_LABEL.test(labels[labels.length - 1])) return true;
  return labels.length === 4 && labels.every((label) => DECIMAL_OCTET.test(label) && Number(label) <= 255);
}

/** scheme, host (lower-case letters, digits, "-" and "."), port, path, then an optional query. */
const CANONICAL =
  /^(https?):\/\/([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&()*+,;=:@%/]*)(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@%/?]*)?$/;

/** A percent-encoded "." (which the URL parser reads as one, in dot segments). */
const ESCAPED_DOT = /%2e/i;

/** A label the URL parser reads as a number, making the host an IPv4 address. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;

/** A number 0–999 without leading zeros. */
const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
