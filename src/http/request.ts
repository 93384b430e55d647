/**
 * Pure helpers of the HTTP phase: a request's URL from its target and `Host`, which methods a web
 * `Request` can carry, persistence (RFC 9112 §9.3), and the web `Request` handed to hooks.
 * @module
 */

import type { RequestHead } from "../handshake.ts";
import type { HttpError } from "./response.ts";

/**
 * The request's URL at `scheme` (from its target and `Host`, or `fallbackHost` for an HTTP/1.0
 * request without one), or the 400 to answer when it is unusable. Origin-form is the authority
 * from `Host` followed by the target as it is (RFC 9112 §3.3), never a reference resolved against
 * it: "//elsewhere/x" is a path here. An OPTIONS "*" has an empty path; absolute-form (RFC 9112
 * §3.2.2) brings its own authority, at our scheme.
 */
export function requestUrl(head: RequestHead, scheme: string, fallbackHost: string): URL | HttpError {
  const host = head.headers.get("host");
  if (host === undefined && head.minorVersion >= 1) return { status: 400, message: "missing Host header" };
  if (host !== undefined && !isHost(host)) return { status: 400, message: "invalid Host header" };
  const target = head.target === "*" && head.method === "OPTIONS" ? "" : head.target;
  const origin = target === "" || target.startsWith("/");
  if (!origin && !ABSOLUTE_FORM.test(target)) {
    return { status: 400, message: "the request target must be a path or an absolute URL" };
  }
  let url: URL;
  try {
    url = new URL(origin ? `${scheme}://${host ?? fallbackHost}${target}` : target);
  } catch {
    return { status: 400, message: "invalid request target" };
  }
  if (url.protocol !== `${scheme}:`) url.protocol = scheme;
  if (url.protocol !== `${scheme}:`) return { status: 400, message: "invalid request target" };
  return url;
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
  const connection = (head.headers.get("connection") ?? "").toLowerCase();
  const listed = (token: string) => connection.split(",").some((item) => item.trim() === token);
  return head.minorVersion >= 1 ? !listed("close") : listed("keep-alive");
}

/** Whether a request with a body waits for `100 Continue` before sending it (RFC 9110 §10.1.1). */
export function expectsContinue(head: RequestHead): boolean {
  return head.minorVersion >= 1 && (head.headers.get("expect") ?? "").toLowerCase() === "100-continue";
}

/**
 * The web `Request` handed to hooks, at the `http:` (`https:`) form of `url`, with `body` as its
 * body stream (or none).
 */
export function webRequest(head: RequestHead, url: URL, body: ReadableStream<Uint8Array> | null): Request {
  const href = url.protocol.startsWith("ws") ? "http" + url.href.slice("ws".length) : url.href;
  const init: RequestInit & { duplex?: "half" } = { method: head.method, headers: [...head.headers], body };
  if (body !== null) init.duplex = "half"; // a streamed body (the fetch standard requires saying so)
  return new Request(href, init);
}
