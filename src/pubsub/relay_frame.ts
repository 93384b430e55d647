/**
 * The worker relay's wire format, between the relay (in the `--workers` supervisor) and each
 * worker: length-prefixed frames over a loopback TCP connection. Pure: bytes in, frames out, no
 * I/O. Bounded: a frame that announces more than the reader's limit is an error, so a peer that
 * sends garbage cannot make the reader hold unbounded memory.
 *
 * A frame is a 4-byte big-endian length (of what follows it), a kind byte, then:
 * - `HELLO` (worker → relay, first): the 16-byte token, the worker's id as a 4-byte number.
 * - `WELCOME` (relay → worker, the answer to a right token): nothing.
 * - `SUBSCRIBE`, `UNSUBSCRIBE` (worker → relay): the topic's UTF-8.
 * - `TEXT`, `BINARY` (both ways; a publish): the topic's UTF-8 length as a 4-byte number, the
 *   topic's UTF-8, the payload (UTF-8 text, or bytes).
 * @module
 */

import { ByteQueue } from "../byte_queue.ts";
import { textDecoder } from "../utf8.ts";

/** The kinds of frame, as their kind byte. */
export const FrameKind = {
  HELLO: 1,
  WELCOME: 2,
  SUBSCRIBE: 3,
  UNSUBSCRIBE: 4,
  TEXT: 5,
  BINARY: 6,
} as const;

/** A kind byte of {@linkcode FrameKind}. */
export type FrameKind = typeof FrameKind[keyof typeof FrameKind];

/** Bytes of the relay's token, which a worker proves it was started by the supervisor with. */
export const TOKEN_LENGTH = 16;
/** Bytes of a whole `HELLO` frame: what the relay reads at most from a peer it does not know yet. */
export const HELLO_LENGTH: number = 4 + 1 + TOKEN_LENGTH + 4;

/**
 * The bytes of a token given as 32 hex digits; `who` names the function in the `TypeError` for
 * anything else.
 */
export function tokenBytes(token: unknown, who: string): Uint8Array {
  if (typeof token !== "string" || !/^[0-9a-f]{32}$/i.test(token)) {
    throw new TypeError(`${who} option "token" must be ${TOKEN_LENGTH * 2} hex digits`);
  }
  return Uint8Array.from({ length: TOKEN_LENGTH }, (_, i) => parseInt(token.slice(2 * i, 2 * i + 2), 16));
}

/** A token as 32 hex digits (how the supervisor hands it to its workers). */
export function tokenText(token: Uint8Array): string {
  return [...token].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The most a frame may announce after its length field (a publish's topic and payload fit in it). */
export const MAX_FRAME_LENGTH = 64 * 1024 * 1024;

/** Thrown by {@linkcode FrameReader.push} and the frame parsers for bytes that break the format. */
export class RelayProtocolError extends Error {
  /** An error saying what was wrong with the bytes. */
  constructor(message: string) {
    super(`malformed relay frame: ${message}`);
    this.name = "RelayProtocolError";
  }
}

const encoder = new TextEncoder();

/** A frame of `kind` with room for `length` bytes after the kind byte, its header written. */
function frameOf(kind: FrameKind, length: number): Uint8Array {
  const frame = new Uint8Array(5 + length);
  new DataView(frame.buffer).setUint32(0, 1 + length);
  frame[4] = kind;
  return frame;
}

/** The `HELLO` frame of worker `worker`, with the relay's `token`. */
export function helloFrame(token: Uint8Array, worker: number): Uint8Array {
  const frame = frameOf(FrameKind.HELLO, TOKEN_LENGTH + 4);
  frame.set(token, 5);
  new DataView(frame.buffer).setUint32(5 + TOKEN_LENGTH, worker);
  return frame;
}

/** The `WELCOME` frame (the same bytes every time: the relay never changes them). */
export const WELCOME_FRAME: Uint8Array = frameOf(FrameKind.WELCOME, 0);

/** A `SUBSCRIBE` or `UNSUBSCRIBE` frame for `topic`. */
export function topicFrame(
  kind: typeof FrameKind.SUBSCRIBE | typeof FrameKind.UNSUBSCRIBE,
  topic: string,
): Uint8Array {
  const name = encoder.encode(topic);
  const frame = frameOf(kind, name.length);
  frame.set(name, 5);
  return frame;
}

/**
 * A publish of `data` to `topic`: a `TEXT` frame for a string, a `BINARY` one for bytes. Null
 * when it would be longer than {@linkcode MAX_FRAME_LENGTH}.
 */
export function publishFrame(topic: string, data: string | Uint8Array): Uint8Array | null {
  const name = encoder.encode(topic);
  const payload = typeof data === "string" ? encoder.encode(data) : data;
  const length = 4 + name.length + payload.length;
  if (1 + length > MAX_FRAME_LENGTH) return null;
  const frame = frameOf(typeof data === "string" ? FrameKind.TEXT : FrameKind.BINARY, length);
  new DataView(frame.buffer).setUint32(5, name.length);
  frame.set(name, 9);
  frame.set(payload, 9 + name.length);
  return frame;
}

/** A frame's kind byte (frames from {@linkcode FrameReader} have one). */
export function frameKind(frame: Uint8Array): number {
  return frame[4];
}

/** What a `HELLO` frame says. */
export interface Hello {
  /** The token it gives. */
  token: Uint8Array;
  /** The worker's id. */
  worker: number;
}

/** Reads a `HELLO` frame; throws a {@linkcode RelayProtocolError} for one of the wrong size. */
export function parseHello(frame: Uint8Array): Hello {
  if (frame.length !== HELLO_LENGTH) throw new RelayProtocolError(`a HELLO of ${frame.length} bytes`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  return { token: frame.subarray(5, 5 + TOKEN_LENGTH), worker: view.getUint32(5 + TOKEN_LENGTH) };
}

/** The topic of a `SUBSCRIBE` or `UNSUBSCRIBE` frame. */
export function parseTopic(frame: Uint8Array): string {
  return textDecoder.decode(frame.subarray(5));
}

/** What a publish frame carries. */
export interface Publish {
  /** The topic. */
  topic: string;
  /** The message: a string for `TEXT`, bytes (a view of the frame) for `BINARY`. */
  data: string | Uint8Array;
}

/** The topic of a `TEXT` or `BINARY` frame; throws a {@linkcode RelayProtocolError} when it does not fit. */
export function publishTopic(frame: Uint8Array): string {
  return textDecoder.decode(frame.subarray(9, 9 + topicLength(frame)));
}

/** Reads a `TEXT` or `BINARY` frame; throws a {@linkcode RelayProtocolError} when its topic does not fit. */
export function parsePublish(frame: Uint8Array): Publish {
  const end = 9 + topicLength(frame);
  const payload = frame.subarray(end);
  return {
    topic: textDecoder.decode(frame.subarray(9, end)),
    data: frameKind(frame) === FrameKind.TEXT ? textDecoder.decode(payload) : payload,
  };
}

function topicLength(frame: Uint8Array): number {
  if (frame.length < 9) throw new RelayProtocolError("a publish without its topic length");
  const length = new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(5);
  if (9 + length > frame.length) {
    throw new RelayProtocolError(`a topic of ${length} bytes in a frame of ${frame.length}`);
  }
  return length;
}

/**
 * Cuts a stream of bytes into frames. Each frame comes out as a copy of its own, whole (length
 * field included), so that it may be kept or written on as it is.
 */
export class FrameReader {
  readonly #unread: ByteQueue;
  /** The most a frame may announce after its length field. */
  limit: number;

  /** A reader of chunks like `ownBuffers` says (see `ReadChunks`), taking frames up to `limit`. */
  constructor(ownBuffers: boolean, limit = MAX_FRAME_LENGTH) {
    this.#unread = new ByteQueue(ownBuffers);
    this.limit = limit;
  }

  /** Whether the reader keeps a view of the last chunk pushed (so its buffer must not be reused). */
  get borrowing(): boolean {
    return this.#unread.borrowing;
  }

  /**
   * Takes the next chunk and returns the frames it completed. Throws a
   * {@linkcode RelayProtocolError} for a frame that is empty, longer than the limit, or of no
   * known kind; the stream is unusable then.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const unread = this.#unread;
    unread.push(chunk);
    const frames: Uint8Array[] = [];
    while (unread.length >= 4) {
      const bytes = unread.bytes;
      const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
      if (length === 0 || length > this.limit) {
        throw new RelayProtocolError(`a frame of ${length} bytes (at most ${this.limit})`);
      }
      if (bytes.length < 5) break;
      if (bytes[4] < FrameKind.HELLO || bytes[4] > FrameKind.BINARY) {
        throw new RelayProtocolError(`a frame of unknown kind ${bytes[4]}`);
      }
      if (bytes.length < 4 + length) break;
      frames.push(bytes.slice(0, 4 + length));
      unread.consume(4 + length);
    }
    // Half a frame left over is copied out rather than pin a large read buffer.
    unread.compact();
    return frames;
  }
}
