/**
 * The opening handshake (RFC 6455 §4.2) and the bit of HTTP/1.1 around it: parsing a request
 * head, validating an upgrade, computing the accept key, and the 101 response. No I/O here.
 * @module
 */

import { httpDate } from "./http/date.ts";
import { type HttpError, latin1Bytes } from "./http/response.ts";

export type { HttpError };

/** The GUID RFC 6455 appends to the client's key before hashing. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Base64 of exactly 16 bytes: 22 significant characters and two pad characters. */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Request header fields by lower-case name, repeated fields joined with ", " (RFC 9110 §5.3). A
 * plain map: the checks of a handshake need no web `Headers` object.
 */
export type HeaderFields = Map<string, string>;

/** A parsed HTTP request head. */
export interface RequestHead {
  /** The request method, e.g. `GET`. */
  method: string;
  /** The request target as sent, e.g. `/chat?room=1`. */
  target: string;
  /** Minor version of HTTP/1.x. */
  minorVersion: number;
  /** The header fields. */
  headers: HeaderFields;
  /** Bytes the head took, including the blank line. */
  size: number;
}

/** Limits on a request head. */
export interface HeadLimits {
  /** Largest head, in bytes. */
  maxHeadSize: number;
  /** Most header fields. */
  maxHeaderCount: number;
}

/**
 * Parses the request head at the start of `bytes`. Returns `null` while it is incomplete, an
 * {@linkcode HttpError} when it is malformed (400), too large or has too many headers (431), or
 * is not HTTP/1.x (505).
 */
export function parseRequestHead(bytes: Uint8Array, limits: HeadLimits): RequestHead | HttpError | null {
  // Empty lines before a request line are ignored (RFC 9112 §2.2): clients may send one after a body.
  let skip = 0;
  while (bytes[skip] === CR && bytes[skip + 1] === LF) skip += 2;
  if (skip > 0) {
    const head = parseRequestHead(bytes.subarray(skip), {
      ...limits,
      maxHeadSize: limits.maxHeadSize - skip,
    });
    if (head !== null && !("status" in head)) head.size += skip;
    return head;
  }
  const end = findHeadEnd(bytes, Math.min(bytes.length, limits.maxHeadSize));
  if (end === BARE_LINE_END) return { status: 400, message: "lines must end with CRLF" };
  if (end < 0 || end + 4 > limits.maxHeadSize) {
    return bytes.length >= limits.maxHeadSize || end >= 0
      ? { status: 431, message: `request head exceeds ${limits.maxHeadSize} bytes` }
      : null;
  }
  // The structure is found on the bytes; strings are cut from one decoded copy of the head, so a
  // handshake allocates little more than the values it keeps. The copy keeps the blank line: a
  // chunk that is just the head is decoded whole, and every line ends with "\r\n" in it.
  const text = latin1(bytes, end + 4);
  let lineEnd = text.indexOf("\r\n");
  const methodEnd = scanToken(bytes, 0, lineEnd);
  const targetEnd = scanVisible(bytes, methodEnd + 1, lineEnd);
  const version = targetEnd + 1;
  if (
    methodEnd === 0 || bytes[methodEnd] !== SP || targetEnd === methodEnd + 1 || bytes[targetEnd] !== SP ||
    lineEnd - version !== 8 || !text.startsWith("HTTP/", version) || !isDigit(bytes[version + 5]) ||
    bytes[version + 6] !== DOT || !isDigit(bytes[version + 7])
  ) {
    return { status: 400, message: "malformed request line" };
  }
  if (bytes[version + 5] !== DIGIT_1) return { status: 505, message: "only HTTP/1.x is supported" };
  const headers: HeaderFields = new Map();
  let count = 0;
  for (let start = lineEnd + 2; start < end; start = lineEnd + 2) {
    lineEnd = text.indexOf("\r\n", start);
    if (++count > limits.maxHeaderCount) {
      return { status: 431, message: `more than ${limits.maxHeaderCount} header fields` };
    }
    const colon = scanToken(bytes, start, lineEnd);
    // A missing colon, a name that is not a token, or obsolete line folding are all refused.
    if (colon === start || bytes[colon] !== COLON) return { status: 400, message: "malformed header field" };
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && isBlank(bytes[valueStart])) valueStart++;
    while (valueEnd > valueStart && isBlank(bytes[valueEnd - 1])) valueEnd--;
    for (let i = valueStart; i < valueEnd; i++) {
      if (!FIELD_VALUE[bytes[i]]) return { status: 400, message: "invalid header value" };
    }
    const name = fieldName(bytes, text, start, colon);
    const value = text.slice(valueStart, valueEnd);
    const earlier = headers.get(name);
    if (earlier !== undefined && name === "host") {
      return { status: 400, message: "more than one Host header" };
    }
    headers.set(name, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  return {
    method: methodEnd === 3 && text.startsWith("GET") ? "GET" : text.slice(0, methodEnd), // no copy for GET
    target: text.slice(methodEnd + 1, targetEnd),
    minorVersion: bytes[version + 7] - DIGIT_0,
    headers,
    size: end + 4,
  };
}

/**
 * A request head another HTTP parser has read (`node:http`'s `IncomingMessage`), as
 * {@linkcode parseRequestHead} would give it: names lower-cased, repeated fields joined, a second
 * `Host` refused (400). `rawHeaders` alternates names and values as they came.
 */
export function requestHead(
  method: string,
  target: string,
  minorVersion: number,
  rawHeaders: readonly string[],
): RequestHead | HttpError {
  const headers: HeaderFields = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const earlier = headers.get(name);
    if (earlier !== undefined && name === "host") {
      return { status: 400, message: "more than one Host header" };
    }
    headers.set(name, earlier === undefined ? rawHeaders[i + 1] : `${earlier}, ${rawHeaders[i + 1]}`);
  }
  return { method, target, minorVersion, headers, size: 0 };
}

const SP = 0x20, TAB = 0x09, CR = 0x0d, LF = 0x0a, COLON = 0x3a, DOT = 0x2e, DIGIT_0 = 0x30, DIGIT_1 = 0x31;

/** Byte classes, indexed by byte: token characters (RFC 9110 §5.6.2). */
const TOKEN_CHAR = byteClass((b) =>
  b > 0x20 && b < 0x7f && !'"(),/:;<=>?@[\\]{}'.includes(String.fromCharCode(b))
);
/** Bytes allowed in a field value: visible characters, space, tab and obs-text (RFC 9110 §5.5). */
const FIELD_VALUE = byteClass((b) => b === TAB || (b >= 0x20 && b !== 0x7f));

function byteClass(member: (byte: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let b = 0; b < 256; b++) table[b] = member(b) ? 1 : 0;
  return table;
}

/** Whether `value` is a token (RFC 9110 §5.6.2): one or more token characters. */
export function isToken(value: string): boolean {
  if (value === "") return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code > 0xff || !TOKEN_CHAR[code]) return false;
  }
  return true;
}

/** Index of the first byte from `start` (before `end`) that is not a token character. */
function scanToken(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && TOKEN_CHAR[bytes[i]]) i++;
  return i;
}

/** Index of the first byte from `start` (before `end`) that is a space, a control or DEL. */
function scanVisible(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && bytes[i] > SP && bytes[i] !== 0x7f) i++;
  return i;
}

function isDigit(byte: number): boolean {
  return byte >= DIGIT_0 && byte <= DIGIT_0 + 9;
}

function isBlank(byte: number): boolean {
  return byte === SP || byte === TAB;
}

/**
 * The field names clients send in handshakes, lower-cased once here: a name matching one (in any
 * case) costs no string of its own. Bucketed by length for a quick lookup.
 */
const COMMON_NAMES: string[][] = [];
for (
  const name of [
    "host",
    "upgrade",
    "connection",
    "origin",
    "pragma",
    "cookie",
    "user-agent",
    "cache-control",
    "authorization",
    "accept-encoding",
    "accept-language",
    "content-length",
    "content-type",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
  ]
) (COMMON_NAMES[name.length] ??= []).push(name);

/** The lower-case name of the header field whose name is `bytes[start..end)`. */
function fieldName(bytes: Uint8Array, text: string, start: number, end: number): string {
  const candidates = COMMON_NAMES[end - start];
  if (candidates !== undefined) {
    for (const name of candidates) {
      let i = 0;
      // Token characters: setting bit 0x20 lower-cases letters and leaves "-" and digits alone.
      while (i < name.length && (bytes[start + i] | 0x20) === name.charCodeAt(i)) i++;
      if (i === name.length) return name;
    }
  }
  return text.slice(start, end).toLowerCase();
}

/** What {@linkcode findHeadEnd} returns for a line that ends in a bare LF, or a CR without LF. */
const BARE_LINE_END = -2;

/**
 * Index of the `\r\n\r\n` that ends the head, looking from the first `limit` bytes on; -1 while
 * it has not arrived, {@linkcode BARE_LINE_END} as soon as a line ends otherwise than with CRLF
 * (so such a request is refused at once rather than when the head deadline runs out).
 */
function findHeadEnd(bytes: Uint8Array, limit: number): number {
  for (let i = 0; i < limit; i++) {
    const byte = bytes[i];
    if (byte === LF) return BARE_LINE_END; // every LF of a CRLF is stepped over below
    if (byte !== CR) continue;
    if (i + 1 === bytes.length) return -1;
    if (bytes[i + 1] !== LF) return BARE_LINE_END;
    if (bytes[i + 2] === CR && bytes[i + 3] === LF) return i;
    i++;
  }
  return -1;
}

/** Bytes as a string of code points 0–255 (HTTP heads are octets, not UTF-8). */
function latin1(bytes: Uint8Array, length: number): string {
  const head = length === bytes.length ? bytes : bytes.subarray(0, length);
  // Almost every head is ASCII, which the (much faster) native decoder reads the same way.
  let ascii = true;
  for (let i = 0; i < length && ascii; i++) ascii = bytes[i] < 0x80;
  if (ascii) return asciiDecoder.decode(head);
  let text = "";
  for (let i = 0; i < length; i += 4096) {
    text += String.fromCharCode.apply(null, head.subarray(i, i + 4096) as unknown as number[]);
  }
  return text;
}

const asciiDecoder = new TextDecoder();

/**
 * Whether a comma-separated header value lists `token`, given in lower case, in any case. Walks
 * the value in place: this runs twice per handshake, and once per plain request.
 */
export function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (let start = 0; start <= value.length;) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let from = start;
    let to = end;
    while (from < to && isBlank(value.charCodeAt(from))) from++;
    while (to > from && isBlank(value.charCodeAt(to - 1))) to--;
    if (to - from === token.length) {
      let i = 0;
      while (i < token.length && (value.charCodeAt(from + i) | 0x20) === token.charCodeAt(i)) i++;
      if (i === token.length) return true;
    }
    start = end + 1;
  }
  return false;
}

/** True when the request asks for a WebSocket (its `Upgrade` header names `websocket`). */
export function isUpgradeRequest(headers: HeaderFields): boolean {
  return hasToken(headers.get("upgrade"), "websocket");
}

/**
 * Checks a WebSocket upgrade request. Returns its `Sec-WebSocket-Key`, or the error to answer
 * with: 400 for a malformed request, 426 (naming version 13) for another protocol version.
 */
export function validateUpgrade(head: RequestHead): string | HttpError {
  const headers = head.headers;
  if (head.method !== "GET") return { status: 400, message: "a WebSocket upgrade must use GET" };
  if (head.minorVersion < 1) return { status: 400, message: "a WebSocket upgrade needs HTTP/1.1" };
  if (!headers.has("host")) return { status: 400, message: "missing Host header" };
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return { status: 400, message: "the Connection header must include Upgrade" };
  }
  const key = headers.get("sec-websocket-key");
  if (key === undefined || !WEBSOCKET_KEY.test(key)) {
    return { status: 400, message: "Sec-WebSocket-Key must be the base64 of 16 bytes" };
  }
  if (headers.get("sec-websocket-version") !== "13") {
    return {
      status: 426,
      message: "only WebSocket version 13 is supported",
      headers: { "Sec-WebSocket-Version": "13" },
    };
  }
  return key;
}

/**
 * The subprotocols a client offers in `Sec-WebSocket-Protocol`, in its order. Returns `null`
 * when an entry is not a token.
 */
export function offeredProtocols(headers: HeaderFields): string[] | null {
  const value = headers.get("sec-websocket-protocol");
  if (value === undefined) return [];
  const protocols = value.split(",").map((item) => item.trim()).filter((item) => item !== "");
  return protocols.every(isToken) ? protocols : null;
}

/**
 * SHA-1 of `key` followed by RFC 6455's GUID: the digest whose base64 is `Sec-WebSocket-Accept`.
 * `key` must have passed {@linkcode validateUpgrade} (24 base64 characters).
 */
export function acceptDigest(key: string): Promise<ArrayBuffer> {
  // WebCrypto copies its input before `digest` returns, so one buffer serves every handshake.
  for (let i = 0; i < KEY_LENGTH; i++) DIGEST_INPUT[i] = key.charCodeAt(i);
  return crypto.subtle.digest("SHA-1", DIGEST_INPUT);
}

const KEY_LENGTH = 24;
const DIGEST_INPUT = latin1Bytes("k".repeat(KEY_LENGTH) + WEBSOCKET_GUID);

const SWITCHING_PROTOCOLS = latin1Bytes(
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
);
/** Base64 of a 20-byte SHA-1 digest: 28 characters, the last one padding. */
const ACCEPT_LENGTH = 28;
const BASE64 = latin1Bytes("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

/**
 * The `101 Switching Protocols` response that completes a handshake, with the base64 of `digest`
 * (from {@linkcode acceptDigest}) written straight into it as `Sec-WebSocket-Accept`.
 */
export function switchingProtocols(
  digest: ArrayBuffer,
  protocol: string,
  extensions: string,
  extra: Headers | null,
): Uint8Array {
  let tail = `\r\nDate: ${httpDate()}`;
  if (protocol !== "") tail += `\r\nSec-WebSocket-Protocol: ${protocol}`;
  if (extensions !== "") tail += `\r\nSec-WebSocket-Extensions: ${extensions}`;
  if (extra !== null) { for (const [name, value] of extra) tail += `\r\n${name}: ${value}`; }
  tail += "\r\n\r\n";
  const prefix = SWITCHING_PROTOCOLS.length;
  const response = new Uint8Array(prefix + ACCEPT_LENGTH + tail.length);
  response.set(SWITCHING_PROTOCOLS);
  const sha1 = new Uint8Array(digest);
  let at = prefix;
  for (let i = 0; i < 18; i += 3) {
    const triple = (sha1[i] << 16) | (sha1[i + 1] << 8) | sha1[i + 2];
    response[at++] = BASE64[triple >> 18];
    response[at++] = BASE64[(triple >> 12) & 63];
    response[at++] = BASE64[(triple >> 6) & 63];
    response[at++] = BASE64[triple & 63];
  }
  const last = (sha1[18] << 8) | sha1[19]; // two bytes left: three characters and one "="
  response[at++] = BASE64[last >> 10];
  response[at++] = BASE64[(last >> 4) & 63];
  response[at++] = BASE64[(last << 2) & 63];
  response[at++] = 0x3d;
  latin1Bytes(tail, response, at);
  return response;
}
