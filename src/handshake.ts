/**
 * The opening handshake (RFC 6455 §4.2) and the bit of HTTP/1.1 around it: parsing a request
 * head, validating an upgrade, computing the accept key, and writing responses. No I/O here.
 * @module
 */

/** The GUID RFC 6455 appends to the client's key before hashing. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const encoder = new TextEncoder();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
/** Base64 of exactly 16 bytes: 22 significant characters and two pad characters. */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;
/** Field values: visible characters, spaces and tabs, and obs-text (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

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

/** An HTTP status to answer with instead of going on. */
export interface HttpError {
  /** The status code to answer with. */
  status: number;
  /** A plain-text explanation, sent as the body. */
  message: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
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
  const end = findHeadEnd(bytes, Math.min(bytes.length, limits.maxHeadSize));
  if (end < 0) {
    return bytes.length >= limits.maxHeadSize
      ? { status: 431, message: `request head exceeds ${limits.maxHeadSize} bytes` }
      : null;
  }
  const lines = latin1(bytes, end).split("\r\n");
  const requestLine = REQUEST_LINE.exec(lines[0]);
  if (requestLine === null) return { status: 400, message: "malformed request line" };
  if (requestLine[3] !== "1") return { status: 505, message: "only HTTP/1.x is supported" };
  if (lines.length - 1 > limits.maxHeaderCount) {
    return { status: 431, message: `more than ${limits.maxHeaderCount} header fields` };
  }
  const headers: HeaderFields = new Map();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    // A missing colon, a name that is not a token, or obsolete line folding are all refused.
    if (colon <= 0 || !TOKEN.test(name)) return { status: 400, message: "malformed header field" };
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return { status: 400, message: "invalid header value" };
    const key = name.toLowerCase();
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  return {
    method: requestLine[1],
    target: requestLine[2],
    minorVersion: Number(requestLine[4]),
    headers,
    size: end + 4,
  };
}

/** Index of the `\r\n\r\n` that ends the head within the first `limit` bytes, or -1. */
function findHeadEnd(bytes: Uint8Array, limit: number): number {
  for (let i = 0; i + 3 < limit; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** Bytes as a string of code points 0–255 (HTTP heads are octets, not UTF-8). */
function latin1(bytes: Uint8Array, length: number): string {
  const head = bytes.subarray(0, length);
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

/** Whether a comma-separated header value lists `token` (case-insensitively). */
function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(",").some((item) => item.trim().toLowerCase() === token);
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
  return protocols.every((protocol) => TOKEN.test(protocol)) ? protocols : null;
}

/** `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)). */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + WEBSOCKET_GUID));
  return btoa(String.fromCharCode.apply(null, new Uint8Array(digest) as unknown as number[]));
}

const REASON_PHRASES: Record<number, string> = {
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

/** The status line and header block of a response, ending with the blank line. */
function responseHead(status: number, headers: Iterable<[string, string]>, statusText = ""): string {
  let head = `HTTP/1.1 ${status} ${statusText || REASON_PHRASES[status] || ""}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return head + "\r\n";
}

/** The `101 Switching Protocols` response that completes a handshake. */
export function switchingProtocols(
  accept: string,
  protocol: string,
  extensions: string,
  extra: Headers | null,
): Uint8Array {
  const headers: [string, string][] = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", accept],
  ];
  if (protocol !== "") headers.push(["Sec-WebSocket-Protocol", protocol]);
  if (extensions !== "") headers.push(["Sec-WebSocket-Extensions", extensions]);
  if (extra !== null) headers.push(...extra);
  return encoder.encode(responseHead(101, headers));
}

/** A short plain-text response for an {@linkcode HttpError}; the connection closes after it. */
export function errorResponse(error: HttpError): Uint8Array {
  const body = encoder.encode(error.message + "\n");
  const headers: [string, string][] = [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Connection", "close"],
    ...Object.entries(error.headers ?? {}),
  ];
  return concat(encoder.encode(responseHead(error.status, headers)), body);
}

/**
 * Serializes a web `Response` for a connection that closes after it: the body is read whole and
 * sent with its `Content-Length` (omitted for HEAD requests and bodiless statuses).
 */
export async function encodeResponse(response: Response, method: string): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer());
  const bodiless = response.status === 204 || response.status === 304 || response.status < 200;
  const headers: [string, string][] = [];
  for (const entry of response.headers) {
    const name = entry[0];
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding") {
      headers.push(entry);
    }
  }
  if (!bodiless) headers.push(["content-length", String(body.length)]);
  headers.push(["connection", "close"]);
  const head = encoder.encode(responseHead(response.status, headers, response.statusText));
  return method === "HEAD" || bodiless ? head : concat(head, body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
