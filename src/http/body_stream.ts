/**
 * A plain request's body as the `fetch` handler reads it: a `ReadableStream` that asks its
 * connection for bytes only when the handler reads (a body nobody reads costs no memory), fed by
 * the body's {@linkcode BodyDecoder}.
 * @module
 */

import type { ByteQueue } from "../byte_queue.ts";
import { BodyDecoder, type BodyFraming } from "./body.ts";
import type { HttpError } from "./response.ts";

/** What a body asks of its connection. */
export interface BodySource {
  /** The handler reads and nothing it asked for has been fed yet: more bytes are wanted. */
  bodyWanted(): void;
  /** The handler cancelled the body: the rest of it will not be read. */
  bodyCancelled(): void;
}

/** One request's body. */
export class RequestBody {
  readonly #decoder: BodyDecoder;
  readonly #source: BodySource;
  /** The stream handed to the handler, until it is closed, errored or cancelled. */
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Settles the handler's pending read (set while one waits). */
  #wanted: (() => void) | null = null;
  /** Whether the stream got a piece since the handler last asked (its read is then answered). */
  #fed = false;
  /** Hands decoded pieces to the stream (made with the stream, not per piece). */
  #enqueue: ((piece: Uint8Array) => void) | null = null;

  /** A body framed as `framing`, of at most `maxBodySize` bytes, read from `source`. */
  constructor(framing: BodyFraming, maxBodySize: number, source: BodySource) {
    this.#decoder = new BodyDecoder(framing, maxBodySize);
    this.#source = source;
  }

  /**
   * The whole body when all of it is in `unread` already and it is no chunked one (taken out of
   * `unread`, and the body is then done): handed to the `Request` as bytes, it needs no stream, no
   * pulls and no waiting on the socket. Null otherwise.
   */
  takeWhole(unread: ByteQueue): Uint8Array | null {
    const length = this.#decoder.whole;
    if (length === null || unread.length < length) return null;
    const bytes = unread.bytes.slice(0, length);
    this.#decoder.decode(bytes, drop);
    unread.consume(length);
    return bytes;
  }

  /** Whether the whole body has been decoded (at once for a request without one). */
  get done(): boolean {
    return this.#decoder.done;
  }

  /** Whether the handler's stream is open (bytes go to it rather than being dropped). */
  get streaming(): boolean {
    return this.#controller !== null;
  }

  /** Whether the handler waits for a read. */
  get wanted(): boolean {
    return this.#wanted !== null;
  }

  /** The stream for the handler's `Request`. */
  stream(): ReadableStream<Uint8Array> {
    // A copy of each piece: the handler may keep it, and the bytes it came in are reused.
    this.#enqueue = (piece) => {
      this.#controller?.enqueue(piece.slice());
      this.#fed = true;
    };
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () =>
        new Promise<void>((resolve) => {
          this.#wanted = resolve;
          this.#source.bodyWanted();
        }),
      cancel: () => {
        this.#controller = null;
        this.#source.bodyCancelled();
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Decodes what `unread` holds of the body, into the stream or dropped when there is none, and
   * answers the handler's pending read. Returns the error when the body is malformed or too large
   * (the stream has failed with it then).
   */
  feed(unread: ByteQueue): HttpError | null {
    const decoder = this.#decoder;
    unread.consume(decoder.decode(unread.bytes, this.#controller === null ? drop : this.#enqueue!));
    const error = decoder.error;
    if (error !== null) {
      this.fail(new TypeError(`invalid request body: ${error.message}`));
      return error;
    }
    if (decoder.done) {
      this.#controller?.close();
      this.#controller = null;
    }
    // The pending read is answered only by a piece or the end: a stream does not pull again on its own.
    if (this.#fed || decoder.done) {
      this.#fed = false;
      this.#answer();
    }
    return null;
  }

  /** Drops the rest of the body if all of it is in `unread` (a response came before it was read). */
  dropRest(unread: ByteQueue): void {
    if (!this.#decoder.done) unread.consume(this.#decoder.decode(unread.bytes, drop));
  }

  /** Ends the stream with `error` (the connection failed before the body was read). */
  fail(error: Error): void {
    const controller = this.#controller;
    this.#controller = null;
    controller?.error(error);
    this.#answer();
  }

  #answer(): void {
    const wanted = this.#wanted;
    this.#wanted = null;
    wanted?.();
  }
}

/** Stands in for the body stream when body bytes are read only to be dropped. */
function drop(): void {}
