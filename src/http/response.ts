/**
 * HTTP/1.1 responses on a raw connection: short error answers, and web `Response` objects
 * written with `Content-Length` when their body is short and ends soon, else streamed (chunked
 * for HTTP/1.1 clients) with backpressure.
 * @module
 */

import { httpDate } from "./date.ts";

/** An HTTP status to answer with instead of going on. */
export interface HttpError {
  /** The status code to answer with. */
  status: number;
  /** A plain-text explanation, sent as the body. */
  message: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** Where a response's bytes go. */
export interface ResponseSink {
  /** Queues bytes for the client; false once the connection is gone. */
  write(bytes: Uint8Array): boolean;
  /** Resolves once the client has taken enough of what was written to go on, or at once. */
  drained(): Promise<void> | void;
}

/** How a response is to be written. */
export interface ResponseFraming {
  /** The request's method (a HEAD response has no body). */
  method: string;
  /** Whether the connection is to stay open after the response. */
  keepAlive: boolean;
  /** Whether the client speaks HTTP/1.1 (and so understands chunked coding and persistence). */
  http11: boolean;
}

const REASON_PHRASES: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** The interim response that tells a client waiting on `Expect: 100-continue` to send its body. */
export const CONTINUE: Uint8Array = latin1Bytes("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * A response body up to this size that ends while it is read goes out in one write with its
 * `Content-Length`; a longer one, or one still open, is streamed.
 */
const BUFFERED_BODY = 64 * 1024;

/** Header fields the connection's framing decides, never taken from a `Response`. */
const FRAMING_FIELDS = new Set(["connection", "content-length", "keep-alive", "transfer-encoding"]);

/**
 * A response head's text as bytes: header values are octets (a web `Headers` holds them as
 * code points 0–255), so each code unit is one byte.
 */
export function latin1Bytes(
  text: string,
  into: Uint8Array<ArrayBuffer> = new Uint8Array(text.length),
  offset = 0,
): Uint8Array<ArrayBuffer> {
  for (let i = 0; i < text.length; i++) into[offset + i] = text.charCodeAt(i);
  return into;
}

/**
 * The status line and header block of a response, ending with the blank line; with a `Date`
 * (RFC 9110 §6.6.1) unless `headers` bring their own.
 */
function responseHead(
  status: number,
  headers: Iterable<[string, string]>,
  statusText = "",
  dated = false,
): string {
  let head = `HTTP/1.1 ${status} ${statusText || REASON_PHRASES[status] || ""}\r\n`;
  if (!dated) head += `Date: ${httpDate()}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return head + "\r\n";
}

/** `head` (as octets) followed by `parts` (of `size` bytes in all), in one buffer: one copy of each. */
function withHead(head: string, parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = latin1Bytes(head, new Uint8Array(head.length + size));
  let at = head.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * A promise of null that settles when a timer of this turn of the event loop fires: one timer
 * for all the responses that start reading their bodies in a turn, not one each.
 */
let turnTimer: Promise<null> | null = null;

function laterThisTurn(): Promise<null> {
  return turnTimer ??= new Promise<null>((resolve) =>
    setTimeout(() => {
      turnTimer = null;
      resolve(null);
    }, 0)
  );
}

const encoder = new TextEncoder();

/** A short plain-text response for an {@linkcode HttpError}; the connection closes after it. */
export function errorResponse(error: HttpError): Uint8Array {
  const body = encoder.encode(error.message + "\n");
  const headers: [string, string][] = [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Connection", "close"],
    ...Object.entries(error.headers ?? {}),
  ];
  return withHead(responseHead(error.status, headers), [body], body.length);
}

/** Whether a `Response` asks for the connection to close after it. */
export function responseCloses(response: Response): boolean {
  return /(^|,)\s*close\s*(,|$)/i.test(response.headers.get("connection") ?? "");
}

/**
 * Writes `response` to `sink`. A body that is short and ends while it is read goes out in one
 * write with its `Content-Length`; any other is streamed as it is produced, chunked for HTTP/1.1
 * clients (for HTTP/1.0 ones, up to the connection's close), waiting on the sink between pieces
 * so that a client that reads slowly holds back the producer instead of filling memory. Returns
 * whether the connection may stay open afterwards. Rejects when the body stream fails (the
 * connection must then be dropped: the response is cut short).
 */
export async function writeResponse(
  response: Response,
  framing: ResponseFraming,
  sink: ResponseSink,
): Promise<boolean> {
  const status = response.status;
  const bodiless = status < 200 || status === 204 || status === 304;
  const headers: [string, string][] = [];
  let dated = false;
  for (const entry of response.headers) {
    if (FRAMING_FIELDS.has(entry[0])) continue;
    headers.push(entry);
    if (entry[0] === "date") dated = true;
  }
  const reader = response.body?.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  // What the body yields before a timer fires is written with the head; a body still being
  // produced then (a server-sent event stream, say) is streamed, so its head goes out at once.
  let next = reader?.read() ?? null;
  const later = next === null ? null : laterThisTurn();
  while (next !== null && size <= BUFFERED_BODY) {
    const result = await Promise.race([next, later!]);
    if (result === null) break;
    if (result.done) next = null;
    else {
      parts.push(result.value);
      size += result.value.length;
      next = reader!.read();
    }
  }
  const ended = next === null;
  const sendsBody = !bodiless && framing.method !== "HEAD";
  const streamed = !ended && sendsBody;
  const chunked = streamed && framing.http11;
  let keepAlive = framing.keepAlive && (!streamed || chunked);
  if (!ended && !sendsBody) {
    await reader!.cancel();
    keepAlive = framing.keepAlive;
  }
  if (ended && !bodiless) headers.push(["content-length", String(size)]);
  if (chunked) headers.push(["transfer-encoding", "chunked"]);
  if (!keepAlive) headers.push(["connection", "close"]);
  else if (!framing.http11) headers.push(["connection", "keep-alive"]);
  const head = responseHead(status, headers, response.statusText, dated);
  if (!streamed) {
    sink.write(sendsBody && size > 0 ? withHead(head, parts, size) : latin1Bytes(head));
    return keepAlive;
  }
  const first = chunked && size > 0 ? [chunk(parts, size)] : parts;
  if (!sink.write(withHead(head, first, chunked && size > 0 ? first[0].length : size))) {
    await reader!.cancel();
    return false;
  }
  while (true) {
    await sink.drained();
    const result = await next!;
    if (result.done) break;
    next = reader!.read();
    const piece = result.value;
    if (piece.length === 0) continue;
    if (!sink.write(chunked ? chunk([piece], piece.length) : piece)) {
      await reader!.cancel();
      return false;
    }
  }
  if (chunked) sink.write(LAST_CHUNK);
  return keepAlive;
}

const LAST_CHUNK = latin1Bytes("0\r\n\r\n");

/** `parts` (of `size` bytes in all, more than 0) as one chunk of chunked coding. */
function chunk(parts: Uint8Array[], size: number): Uint8Array {
  return concat([latin1Bytes(`${size.toString(16)}\r\n`), ...parts, CRLF]);
}

const CRLF = latin1Bytes("\r\n");

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const joined = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}
