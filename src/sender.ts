/**
 * The send path of one WebSocket: data and control frames into this turn's {@linkcode SendQueue},
 * compression when agreed, what each send counts, and the backlog limit (a peer that does not read
 * is dropped once its backlog passes `maxBufferedAmount`). The base of `Connection`, so that a
 * socket stays one object.
 * @module
 */

import { type MessageData, ReadyState, type SendOptions, type SendStatus } from "./api.ts";
import { deflateMessage, MessageCompressor } from "./deflate/codec.ts";
import type { DeflateParams } from "./deflate/negotiate.ts";
import { frameHeaderSize, MAX_CONTROL_PAYLOAD, Opcode } from "./frame.ts";
import { messageBytes, messageOpcode } from "./message.ts";
import type { Counters } from "./metrics.ts";
import type { ResolvedValues } from "./options.ts";
import type { Subscriber } from "./pubsub/pubsub.ts";
import type { Transport } from "./runtime/types.ts";
import { SendQueue } from "./send_queue.ts";

/**
 * What {@linkcode Sender.compressionBits} answers for a socket that compresses with a context of
 * its own (server context takeover): its messages are compressed for it alone ({@linkcode Sender.sendOwn}).
 */
export const OWN_CONTEXT: number = -1;

/** The settings the send path reads: the server's resolved options, by reference. */
export type SenderSettings = Readonly<
  Pick<ResolvedValues, "maxBufferedAmount" | "closeOnBackpressureLimit" | "perMessageDeflate">
>;

/** Sends frames to one peer; `readyState` says whether data may still go. */
export abstract class Sender implements Subscriber {
  /** The connection's transport. */
  protected readonly transport: Transport;
  readonly #settings: SenderSettings;
  /** The server's counters, held here to spare a load per count on the hot path. */
  protected readonly counters: Counters;
  /** The window bits we compress with, or 0 without permessage-deflate. */
  readonly #deflateBits: number;
  /** Whether our compression context is kept between messages (server context takeover). */
  readonly #ownContext: boolean;
  /** That context, made with the first message compressed in it. */
  #compressor: MessageCompressor | null = null;
  /** This turn's outgoing frames (made on the first send: idle sockets stay small). */
  #queue: SendQueue | null = null;
  /** Whether a send returned "queued", so that a drain is owed. */
  #backpressured = false;

  /** A send path over `transport`, compressing as `deflate` was agreed (never without). */
  constructor(
    transport: Transport,
    settings: SenderSettings,
    counters: Counters,
    deflate: DeflateParams | null,
  ) {
    this.transport = transport;
    this.#settings = settings;
    this.counters = counters;
    this.#deflateBits = deflate?.serverWindowBits ?? 0;
    this.#ownContext = deflate?.serverContextTakeover ?? false;
  }

  /** A {@linkcode ReadyState} value: only an open socket sends data. */
  abstract readonly readyState: number;

  /**
   * A message was not sent because the backlog was past the limit (with
   * `closeOnBackpressureLimit: false`): the socket tells its `dropped` handler, later.
   */
  protected abstract droppedMessage(data: MessageData): void;

  /** Bytes waiting to go out: this turn's frames plus what the transport has queued. */
  get bufferedAmount(): number {
    return (this.#queue?.bytes ?? 0) + this.transport.pending;
  }

  #out(): SendQueue {
    return this.#queue ??= new SendQueue(this.transport);
  }

  /** See `ServerWebSocket.send`. */
  send(data: MessageData, options?: SendOptions): SendStatus {
    if (
      typeof data === "string" && (options?.compress === false || this.compressionBits(data.length * 3) === 0)
    ) {
      // Text that goes out as it is (even at 3 bytes per code unit it stays under the compression
      // threshold) is encoded straight into the send buffer: its size is known once it is there.
      if (this.readyState !== ReadyState.OPEN) return "dropped";
      if (this.#full()) return this.#drop(data);
      const length = this.#out().text(data);
      this.counters.wireBytesSent += frameHeaderSize(length) + length;
      this.#countSent(length);
      return this.#status();
    }
    const payload = messageBytes(data, "send");
    if (this.readyState !== ReadyState.OPEN) return "dropped";
    if (this.#full()) return this.#drop(data);
    const bits = options?.compress === false ? 0 : this.compressionBits(payload.length);
    const body = bits === 0
      ? payload
      : bits === OWN_CONTEXT
      ? this.#compress(payload)
      : deflateMessage(payload, bits, this.#settings.perMessageDeflate!.level);
    this.#frame(messageOpcode(data), body, bits !== 0);
    this.#countSent(payload.length);
    return this.#status();
  }

  /** Compresses `payload` in this socket's own context (made on first use, and counted). */
  #compress(payload: Uint8Array): Uint8Array {
    const compressor = this.#compressor;
    if (compressor !== null) return compressor.compress(payload);
    const made = this.#compressor = new MessageCompressor(
      this.#deflateBits,
      this.#settings.perMessageDeflate!.level,
    );
    const compressed = made.compress(payload);
    // Its memory is all there once it compressed a message (and stays as it is).
    this.counters.compressionContexts++;
    this.counters.compressionBytes += made.memory;
    return compressed;
  }

  /** See `ServerWebSocket.ping`. */
  ping(data: MessageData): SendStatus {
    const payload = messageBytes(data, "ping");
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`ping data is ${payload.length} bytes; a ping carries at most 125`);
    }
    if (this.readyState !== ReadyState.OPEN) return "dropped";
    if (this.#full()) return this.#drop(data);
    this.#frame(Opcode.Ping, payload);
    return this.#status();
  }

  /** See {@linkcode Subscriber.compressionBits}. */
  compressionBits(length: number): number {
    const bits = this.#deflateBits;
    if (bits === 0 || length < this.#settings.perMessageDeflate!.threshold) return 0;
    return this.#ownContext ? OWN_CONTEXT : bits;
  }

  /** See {@linkcode Subscriber.sendOwn}: a publish, compressed in this socket's own context. */
  sendOwn(opcode: number, payload: Uint8Array, data: MessageData): SendStatus {
    if (this.#full()) return this.#drop(data);
    this.#frame(opcode, this.#compress(payload), true);
    this.counters.deliveries++;
    this.#countSent(payload.length);
    return this.#status();
  }

  /** See {@linkcode Subscriber.sendShared}: a publish's frame. */
  sendShared(frame: Uint8Array, length: number, data: MessageData): SendStatus {
    if (this.#full()) return this.#drop(data);
    this.#out().shared(frame);
    const counters = this.counters;
    counters.deliveries++;
    counters.wireBytesSent += frame.length;
    this.#countSent(length);
    return this.#status();
  }

  /**
   * Queues a frame Wisp sends of its own accord (pong, idle ping, close): it counts toward the
   * backlog limit like data. False when it dropped the connection.
   */
  control(opcode: number, payload: Uint8Array): boolean {
    this.#frame(opcode, payload);
    return !this.#droppedOverLimit();
  }

  /** Drops the connection without a closing handshake. */
  terminate(): void {
    this.transport.destroy();
  }

  /** Hands this turn's frames to the transport now (before a half-close). */
  protected flush(): void {
    this.#queue?.flush();
  }

  /**
   * The transport wrote what it had: its buffers are free again. Returns whether a send returned
   * "queued" since the last drain (the `drain` handler is owed).
   */
  protected drained(): boolean {
    if (this.transport.pending === 0) this.#queue?.reclaim();
    const owed = this.#backpressured;
    this.#backpressured = false;
    return owed;
  }

  /** Lets go of a send buffer kept for reuse (a quiet socket). */
  protected trim(): void {
    this.#queue?.trim();
  }

  /** Forgets what is queued and its compression context (the connection is gone). */
  protected discard(): void {
    this.#queue?.clear();
    const compressor = this.#compressor;
    if (compressor === null) return;
    this.#compressor = null;
    this.counters.compressionContexts--;
    this.counters.compressionBytes -= compressor.memory;
  }

  /** Queues a frame carrying `payload` (RSV1 set when `rsv1`), counting its bytes. */
  #frame(opcode: number, payload: Uint8Array, rsv1 = false): void {
    this.#out().frame(opcode, payload, rsv1);
    this.counters.wireBytesSent += frameHeaderSize(payload.length) + payload.length;
  }

  /** Counts a data message of `length` payload bytes (before compression) as sent. */
  #countSent(length: number): void {
    const counters = this.counters;
    counters.messagesSent++;
    counters.payloadBytesSent += length;
  }

  /** What a send just did, closing the connection when the backlog passes the limit. */
  #status(): SendStatus {
    if (this.#droppedOverLimit()) return "dropped";
    if (this.transport.pending > 0) {
      this.#backpressured = true;
      return "queued";
    }
    return "sent";
  }

  /**
   * Whether a message is to be dropped rather than sent: the backlog is past the limit and the
   * socket is kept then (`closeOnBackpressureLimit: false`), so the backlog stays within the
   * limit plus one message.
   */
  #full(): boolean {
    return !this.#settings.closeOnBackpressureLimit && this.bufferedAmount > this.#settings.maxBufferedAmount;
  }

  /** Drops a message for a kept socket past its backlog limit: counted, and told to the handler. */
  #drop(data: MessageData): SendStatus {
    this.counters.messagesDropped++;
    this.droppedMessage(data);
    return "dropped";
  }

  /** Drops the connection if its backlog passed `maxBufferedAmount`; true when it did. */
  #droppedOverLimit(): boolean {
    if (this.bufferedAmount <= this.#settings.maxBufferedAmount || !this.#settings.closeOnBackpressureLimit) {
      return false;
    }
    // The peer does not read: a close frame would wait behind the backlog, so drop the link.
    this.counters.drops.backlog++;
    this.terminate();
    return true;
  }
}
