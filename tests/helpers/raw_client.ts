/**
 * A byte-level WebSocket client for tests: it writes hand-built frames over a plain TCP socket
 * (node:net, which both Deno and Bun ship) and reads exactly what the server sends back.
 */

import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";

// Opcodes as RFC 6455 §5.2 numbers them, written out here rather than taken from the server's code.
/** Opcode of a continuation frame. */
export const CONTINUATION = 0x0;
/** Opcode of a text frame. */
export const TEXT = 0x1;
/** Opcode of a binary frame. */
export const BINARY = 0x2;
/** Opcode of a close frame. */
export const CLOSE = 0x8;
/** Opcode of a ping frame. */
export const PING = 0x9;
/** Opcode of a pong frame. */
export const PONG = 0xa;

/** A frame as the server sent it. */
export interface ReceivedFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** Options for {@linkcode frame}. */
export interface FrameOptions {
  fin?: boolean;
  /** RSV bits as they sit in the first byte (0x40 = RSV1). */
  rsv?: number;
  /** Set false to send an unmasked frame (a violation from a client). */
  mask?: boolean;
  /** Override the 7-bit length field and extended length bytes (for malformed lengths). */
  lengthBytes?: Uint8Array;
  /** The 4-byte masking key; a fixed non-zero key by default. */
  key?: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const DEFAULT_KEY = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Encodes a client frame, masked with a fixed non-zero key unless told otherwise. */
export function frame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  options: FrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const masked = options.mask ?? true;
  const fin = options.fin ?? true;
  let lengthBytes = options.lengthBytes;
  if (lengthBytes === undefined) {
    if (data.length < 126) lengthBytes = Uint8Array.of(data.length);
    else if (data.length < 65536) lengthBytes = Uint8Array.of(126, data.length >> 8, data.length & 0xff);
    else {
      lengthBytes = new Uint8Array(9);
      lengthBytes[0] = 127;
      new DataView(lengthBytes.buffer).setBigUint64(1, BigInt(data.length));
    }
  }
  const key = options.key ?? DEFAULT_KEY;
  const out = new Uint8Array(1 + lengthBytes.length + (masked ? 4 : 0) + data.length);
  out[0] = (fin ? 0x80 : 0) | (options.rsv ?? 0) | opcode;
  out.set(lengthBytes, 1);
  out[1] |= masked ? 0x80 : 0;
  let at = 1 + lengthBytes.length;
  if (masked) {
    out.set(key, at);
    at += 4;
  }
  for (let i = 0; i < data.length; i++) out[at + i] = masked ? data[i] ^ key[i & 3] : data[i];
  return out;
}

/** A close frame's payload: code and reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const reasonBytes = encoder.encode(reason);
  const out = new Uint8Array(2 + reasonBytes.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(reasonBytes, 2);
  return out;
}

/** Joins byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A valid upgrade request head for `path`, with extra or replaced headers (null removes one). */
export function upgradeRequest(path = "/", headers: Record<string, string | null> = {}): string {
  const all: Record<string, string | null> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  let head = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(all)) if (value !== null) head += `${name}: ${value}\r\n`;
  return head + "\r\n";
}

/** An HTTP response head read by {@linkcode RawClient.readResponse}. */
export interface ResponseHead {
  status: number;
  headers: Headers;
  body: string;
}

/** A TCP client that reads the server's bytes on demand. */
export class RawClient {
  #socket: Socket;
  #buffer: Uint8Array = new Uint8Array(0);
  #ended = false;
  #waiter: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#buffer = concat(this.#buffer, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.#wake();
    });
    const onEnd = () => {
      this.#ended = true;
      this.#wake();
    };
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.on("error", onEnd);
  }

  /**
   * Opens a TCP connection to 127.0.0.1:`port`, from `localAddress` when given (any address of
   * 127.0.0.0/8 reaches the server, which sees it as the client's address).
   */
  static connect(port: number, localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, localAddress }, () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /**
   * Opens a TLS connection to 127.0.0.1:`port`, trusting `ca` (PEM) and offering ALPN
   * `http/1.1`; resolves once the TLS handshake is done.
   */
  static connectTls(port: number, ca: string): Promise<RawClient & { alpnProtocol: string | false | null }> {
    return new Promise((resolve, reject) => {
      const socket = connectTls({ host: "127.0.0.1", port, ca, ALPNProtocols: ["http/1.1"] }, () => {
        // No Nagle: each write goes out in a record and a segment of its own, as from a client that chops its sends.
        socket.setNoDelay(true);
        const client = new RawClient(socket) as RawClient & { alpnProtocol: string | false | null };
        client.alpnProtocol = socket.alpnProtocol;
        resolve(client);
      });
      socket.once("error", reject);
    });
  }

  /** Connects and completes a WebSocket handshake, expecting 101. */
  static async open(
    port: number,
    path = "/",
    headers: Record<string, string | null> = {},
  ): Promise<RawClient> {
    const client = await RawClient.connect(port);
    client.write(upgradeRequest(path, headers));
    const response = await client.readResponse();
    if (response.status !== 101) throw new Error(`expected 101, got ${response.status}: ${response.body}`);
    return client;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  /** Waits until `ready()` holds, or fails after `ms`. */
  async #until(ready: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready()) {
      if (this.#ended) throw new Error(`connection ended while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Sends bytes (a string is sent as UTF-8). */
  write(data: Uint8Array | string): void {
    this.#socket.write(typeof data === "string" ? encoder.encode(data) : data);
  }

  /** Sends bytes one at a time, yielding between them, to test parsers with split input. */
  async writeBytewise(data: Uint8Array): Promise<void> {
    for (let i = 0; i < data.length; i++) {
      this.#socket.write(data.subarray(i, i + 1));
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** Reads an HTTP response: its head and its Content-Length body (none when `bodiless`, as for HEAD). */
  async readResponse(ms = 5000, bodiless = false): Promise<ResponseHead> {
    let end = -1;
    await this.#until(
      () => (end = decoder.decode(this.#buffer).indexOf("\r\n\r\n")) >= 0,
      "a response head",
      ms,
    );
    const headText = decoder.decode(this.#buffer).slice(0, end);
    const headLength = encoder.encode(headText).length + 4;
    const [statusLine, ...lines] = headText.split("\r\n");
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    const length = bodiless ? 0 : Number(headers.get("content-length") ?? 0);
    await this.#until(() => this.#buffer.length >= headLength + length, "a response body", ms);
    const body = decoder.decode(this.#buffer.subarray(headLength, headLength + length));
    this.#buffer = this.#buffer.slice(headLength + length);
    return { status: Number(statusLine.split(" ")[1]), headers, body };
  }

  /** Takes every byte received and not yet read, as text. */
  takeText(): string {
    const text = decoder.decode(this.#buffer);
    this.#buffer = new Uint8Array(0);
    return text;
  }

  /** Reads the next frame the server sent. */
  async readFrame(ms = 5000): Promise<ReceivedFrame> {
    let size = 0;
    await this.#until(() => (size = frameSize(this.#buffer)) > 0, "a frame", ms);
    const bytes = this.#buffer;
    const len7 = bytes[1] & 0x7f;
    const masked = (bytes[1] & 0x80) !== 0;
    const headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    const received: ReceivedFrame = {
      fin: (bytes[0] & 0x80) !== 0,
      rsv: bytes[0] & 0x70,
      opcode: bytes[0] & 0x0f,
      masked,
      payload: bytes.slice(headerLength, size),
    };
    this.#buffer = bytes.slice(size);
    return received;
  }

  /** Reads frames until a close frame, returning its code (1005 if empty) and reason. */
  async readClose(ms = 5000): Promise<{ code: number; reason: string; skipped: ReceivedFrame[] }> {
    const skipped: ReceivedFrame[] = [];
    while (true) {
      const next = await this.readFrame(ms);
      if (next.opcode !== 0x8) {
        skipped.push(next);
        continue;
      }
      const payload = next.payload;
      const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
      return { code, reason: decoder.decode(payload.subarray(2)), skipped };
    }
  }

  /** Resolves once the server closed the TCP connection; fails after `ms`. */
  async waitForEnd(ms = 5000): Promise<void> {
    await this.#until(() => this.#ended, "the server to close the connection", ms).catch((error) => {
      if (!this.#ended) throw error;
    });
  }

  /** True once the server closed the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The local port of this connection (what the server sees as the client's port). */
  get localPort(): number {
    return this.#socket.localPort ?? 0;
  }

  /** Bytes written that the socket has not handed to the kernel yet (they wait on the server). */
  get unsent(): number {
    return this.#socket.writableLength;
  }

  /** Bytes received and not yet read. */
  get unread(): number {
    return this.#buffer.length;
  }

  /** Closes the socket from our side. */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Sends FIN without closing our read side. */
  end(): void {
    this.#socket.end();
  }

  /** Stops reading from the socket (writes still go out), so the server's sends back up. */
  pause(): void {
    this.#socket.pause();
  }

  /** Reads from the socket again after {@linkcode RawClient.pause}. */
  resume(): void {
    this.#socket.resume();
  }
}

/** Runs `fn` with a fresh connection to `port`, which is destroyed afterwards whatever happens. */
export async function withClient<R>(port: number, fn: (client: RawClient) => Promise<R>): Promise<R> {
  const client = await RawClient.connect(port);
  try {
    return await fn(client);
  } finally {
    client.destroy();
  }
}

/** Size of the complete frame at the start of `bytes`, or 0 when it is not all there. */
function frameSize(bytes: Uint8Array): number {
  if (bytes.length < 2) return 0;
  const len7 = bytes[1] & 0x7f;
  const masked = (bytes[1] & 0x80) !== 0;
  let headerLength = 2 + (masked ? 4 : 0);
  let length = len7;
  if (len7 === 126) {
    if (bytes.length < 4) return 0;
    length = (bytes[2] << 8) | bytes[3];
    headerLength += 2;
  } else if (len7 === 127) {
    if (bytes.length < 10) return 0;
    length = Number(new DataView(bytes.buffer, bytes.byteOffset + 2, 8).getBigUint64(0));
    headerLength += 8;
  }
  return bytes.length >= headerLength + length ? headerLength + length : 0;
}
