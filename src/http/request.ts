/**
 * Pure helpers of the HTTP phase: a request's URL from its target and `Host`, which methods a web
 * `Request` can carry, persistence (RFC 9112 §9.3), and the web `Request` handed to hooks.
 * @module
 */

import { hasToken, type RequestHead } from "../handshake.ts";
import type { HttpError } from "./response.ts";

/**
 * The request's URL at `scheme` (from its target and `Host`, or `fallbackHost` for an HTTP/1.0
 * request without one), or the 400 to answer when it is unusable. Origin-form is the authority
 * from `Host` followed by the target as it is (RFC 9112 §3.3), never a reference resolved against
 * it: "//elsewhere/x" is a path here. An OPTIONS "*" has an empty path; absolute-form (RFC 9112
 * §3.2.2) brings its own authority, at our scheme.
 */
export function requestUrl(head: RequestHead, scheme: string, fallbackHost: string): URL | HttpError {
  const href = requestHref(head, scheme, fallbackHost);
  if (typeof href !== "string") return href;
  try {
    return new URL(href);
  } catch {
    return INVALID_TARGET;
  }
}

/**
 * What {@linkcode requestUrl} gives, as its text, made without a `URL` object when the target is
 * origin-form (a web `Request` parses it anyway): the string is then the scheme, the `Host` and
 * the target as they came, and the caller must still turn a failure to parse it into
 * {@linkcode INVALID_TARGET}.
 */
export function requestHref(head: RequestHead, scheme: string, fallbackHost: string): string | HttpError {
  const host = head.headers.get("host");
  if (host === undefined && head.minorVersion >= 1) return { status: 400, message: "missing Host header" };
  if (host !== undefined && !isHost(host)) return { status: 400, message: "invalid Host header" };
  const target = head.target === "*" && head.method === "OPTIONS" ? "" : head.target;
  if (target === "" || target.charCodeAt(0) === SLASH) return `${scheme}://${host ?? fallbackHost}${target}`;
  if (!ABSOLUTE_FORM.test(target)) {
    return { status: 400, message: "the request target must be a path or an absolute URL" };
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return INVALID_TARGET;
  }
  if (url.protocol !== `${scheme}:`) url.protocol = scheme;
  if (url.protocol !== `${scheme}:`) return INVALID_TARGET;
  return url.href;
}

/** The answer to a request target that is no URL. */
export const INVALID_TARGET: HttpError = { status: 400, message: "invalid request target" };

const SLASH = 0x2f;

/** The path of an origin-form target (`/chat` of `/chat?room=1`), as a URL's `pathname` reads when it needs no escaping. */
export function targetPath(target: string): string {
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** An absolute-form request target (RFC 9112 §3.2.2): a scheme, then "://". */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/** `uri-host [ ":" port ]`, the port captured. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::([0-9]*))?$/;

/**
 * Whether `value` is a valid `Host` (RFC 9112 §3.2): `uri-host [ ":" port ]`, the host an
 * IP-literal or a non-empty reg-name (an http URI may not have an empty host, RFC 9110 §4.2.1).
 */
function isHost(value: string): boolean {
  const match = HOST.exec(value);
  return match !== null && (match[1] === undefined || match[1] === "" || Number(match[1]) <= 65_535);
}

/**
 * Whether a web `Request` carries `method` as it came. Methods are case-sensitive (RFC 9110
 * §9.1), but `Request` upper-cases the standard ones in any case ("get" would become GET) and
 * refuses CONNECT, TRACE and TRACK: those are answered 501 (not implemented).
 */
export function isServableMethod(method: string): boolean {
  const upper = method.toUpperCase();
  if (upper === "CONNECT" || upper === "TRACE" || upper === "TRACK") return false;
  return method === upper || !NORMALIZED_METHODS.has(upper);
}

/** The methods a web `Request` upper-cases (the fetch standard's "normalize a method"). */
const NORMALIZED_METHODS = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);

/** The answer to a request whose method {@linkcode isServableMethod} refuses, or `Request` altered. */
export function notImplemented(method: string): HttpError {
  return { status: 501, message: `the ${method} method is not supported` };
}

/** Whether the client wants the connection kept open after the response (RFC 9112 §9.3). */
export function keepsAlive(head: RequestHead): boolean {
  const connection = head.headers.get("connection");
  return head.minorVersion >= 1 ? !hasToken(connection, "close") : hasToken(connection, "keep-alive");
}

/** Whether a request with a body waits for `100 Continue` before sending it (RFC 9110 §10.1.1). */
export function expectsContinue(head: RequestHead): boolean {
  return head.minorVersion >= 1 && (head.headers.get("expect") ?? "").toLowerCase() === "100-continue";
}

/**
 * The web `Request` handed to hooks, at the `http:` (`https:`) form of `url`, with `body` as its
 * body: a stream (read as the handler reads it), the whole body's bytes, or none.
 */
export function webRequest(
  head: RequestHead,
  url: URL | string,
  body: ReadableStream<Uint8Array> | Uint8Array | null,
): Request {
  const text = typeof url === "string" ? url : url.href;
  const href = text.startsWith("ws") ? "http" + text.slice("ws".length) : text;
  const init: RequestInit & { duplex?: "half" } = {
    method: head.method,
    headers: [...head.headers],
    body: body as BodyInit | null,
  };
  if (body instanceof ReadableStream) init.duplex = "half"; // a streamed body (the fetch standard requires saying so)
  return new Request(href, init);
}
