/**
 * One WebSocket connection's state machine: control frames, the send path with backpressure,
 * topics, and the closing handshake; incoming messages are assembled by a `MessageReader`. Users
 * see it through {@linkcode ServerWebSocket}.
 * @module
 */

import {
  CloseCode,
  encodeClosePayload,
  Failure,
  failureCode,
  failureReason,
  isValidWireCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "./close.ts";
import {
  type MessageData,
  ReadyState,
  type SendOptions,
  type SendStatus,
  type SocketControl,
} from "./api.ts";
import { deflateMessage, MessageInflater } from "./deflate/codec.ts";
import { describeValue } from "./describe_value.ts";
import type { DeflateParams } from "./deflate/negotiate.ts";
import { failureEvent, type ServerEvent } from "./events.ts";
import {
  type FrameHandler,
  frameHeaderSize,
  FrameParser,
  MAX_CONTROL_PAYLOAD,
  Opcode,
  RSV1,
} from "./frame.ts";
import { messageBytes, messageOpcode } from "./message.ts";
import { MessageReader, type MessageSink } from "./message_reader.ts";
import { type Counters, countIn } from "./metrics.ts";
import { checkTopic, type PubSub, type Subscriber } from "./pubsub/pubsub.ts";
import { SMALL_PIECE, type Transport, type TransportEvents } from "./runtime/types.ts";
import { SendQueue } from "./send_queue.ts";
import { ServerWebSocket, type WebSocketHandler } from "./server_websocket.ts";
import { TokenBucket } from "./token_bucket.ts";

/** What the server shares with all its connections (one object per server). */
export interface ConnectionContext<T> {
  /** The `websocket` handlers. */
  handler: WebSocketHandler<T>;
  /** See `ServeOptions.maxPayloadLength`. */
  maxPayloadLength: number;
  /** See `ServeOptions.maxBufferedAmount`. */
  maxBufferedAmount: number;
  /** See `ServeOptions.closeTimeout`. */
  closeTimeout: number;
  /** See `ServeOptions.maxMessagesPerSecond` (0: no limit). */
  maxMessagesPerSecond: number;
  /** See `ServeOptions.maxMessageBurst`. */
  maxMessageBurst: number;
  /** See `ServeOptions.awaitMessages`. */
  awaitMessages: boolean;
  /** The server's topics and compression settings. */
  pubsub: PubSub<Connection<T>>;
  /** The server's counters. */
  counters: Counters;
  /** Hands an event to the server's `onEvent`. */
  report(event: ServerEvent): void;
  /** Called once when a connection's transport has closed. */
  release(connection: Connection<T>): void;
}

/** The per-connection facts fixed by the handshake. */
export interface ConnectionInit<T> {
  /** The requested URL with the `ws:` scheme. */
  url: string;
  /** The agreed subprotocol, or `""`. */
  protocol: string;
  /** The upgrade hook's per-connection data. */
  data: T;
  /** The agreed permessage-deflate parameters, or null. */
  deflate: DeflateParams | null;
}

// deno-lint-ignore no-explicit-any
type AnyHandler = (ws: any, a: any, b: any) => unknown;

/**
 * The payload length of an unmasked frame of `size` bytes, whose header is 2, 4 or 10 bytes
 * long: sizes 128 and 129, and 65 540 to 65 545, are no frame's.
 */
function payloadLength(size: number): number {
  return size - (size <= 127 ? 2 : size <= 65_539 ? 4 : 10);
}

const EMPTY = new Uint8Array(0);

/** A reason not to read (a bit of `#pauses`): the user called `pause`. */
const PAUSED_BY_USER = 1;
/** A reason not to read (a bit of `#pauses`): an awaited `message` handler's promise is pending. */
const PAUSED_FOR_HANDLER = 2;

/**
 * One WebSocket connection's state and protocol logic. Internal: users see it through
 * {@linkcode ServerWebSocket}.
 */
export class Connection<T> implements FrameHandler, TransportEvents, MessageSink, SocketControl, Subscriber {
  /** The public face of this connection, handed to handlers. */
  readonly socket: ServerWebSocket<T>;
  /** A {@linkcode ReadyState} value. */
  readyState: number = ReadyState.OPEN;
  /** Set on every read; the server's idle sweep clears it. */
  #active = true;
  #silentSweeps = 0;

  readonly #transport: Transport;
  readonly #ctx: ConnectionContext<T>;
  /** The server's counters (`ctx.counters`), held here to spare a load per count on the hot path. */
  readonly #counters: Counters;
  /** Made with the reader on the first bytes after the handshake (idle sockets stay small). */
  #parser: FrameParser | null = null;
  #reader: MessageReader | null = null;
  /** What permessage-deflate was agreed on (our window bits, the parser and inflater), or null. */
  readonly #deflate: DeflateParams | null;
  /** Whether the chunk being parsed was kept by a handler (a binary message viewing it). */
  #retained = false;
  /** What the peer may still send under `maxMessagesPerSecond`, or null without a limit. */
  readonly #bucket: TokenBucket | null;

  /** This turn's outgoing frames (created on the first send: idle sockets stay small). */
  #queue: SendQueue | null = null;
  #backpressured = false;
  /** The last ping's payload while its pong waits for the backlog to drain (see #pong); made on first use. */
  #owedPong: Uint8Array | null = null;
  /** Length of the owed pong's payload in `#owedPong`, or -1 when no pong is owed. */
  #owedPongLength = -1;

  /** Topics this socket subscribes to (created on the first subscription). */
  #topics: Set<string> | null = null;

  // Flow control.
  /** Why reading is stopped ({@linkcode PAUSED_BY_USER}, {@linkcode PAUSED_FOR_HANDLER}); 0 while reading. */
  #pauses = 0;
  /** Whether the transport was told to stop reading (and not to read again yet). */
  #transportPaused = false;
  /**
   * Bytes read but not parsed while paused, parsed first on resume: the rest of the chunk a
   * handler paused in, as a view, joined (copied) only by a read that was already under way.
   */
  #held: Uint8Array | null = null;

  // Closing.
  #closeSent = false;
  #reading = true;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #reported = false;

  /** Takes over `transport` once its handshake succeeded. */
  constructor(transport: Transport, ctx: ConnectionContext<T>, init: ConnectionInit<T>) {
    this.#transport = transport;
    this.#ctx = ctx;
    this.#counters = ctx.counters;
    const deflate = init.deflate;
    this.#deflate = deflate;
    this.#bucket = ctx.maxMessagesPerSecond === 0
      ? null
      : new TokenBucket(ctx.maxMessagesPerSecond, ctx.maxMessageBurst);
    this.socket = new ServerWebSocket(this, {
      data: init.data,
      url: init.url,
      protocol: init.protocol,
      extensions: deflate?.response ?? "",
      remoteAddress: transport.remoteAddress,
    });
  }

  /** Bytes waiting to go out: this turn's frames plus what the transport has queued. */
  get bufferedAmount(): number {
    return (this.#queue?.bytes ?? 0) + this.#transport.pending;
  }

  /** Announces the open socket and parses any frames that came with the handshake. */
  start(early: Uint8Array | null): void {
    this.#invoke(this.#ctx.handler.open);
    if (early !== null && early.length > 0) this.data(early);
  }

  // --- TransportEvents -------------------------------------------------------------------------

  data(chunk: Uint8Array): boolean {
    this.#counters.wireBytesReceived += chunk.length;
    this.#active = true;
    if (!this.#reading) return false;
    this.#retained = false;
    if (this.#pauses === 0) this.#parse(chunk);
    else this.#hold(chunk); // a read that was under way when the socket paused
    return this.#retained;
  }

  /** Makes the frame parser and message reader, for the first bytes after the handshake. */
  #startReading(): FrameParser {
    const deflate = this.#deflate;
    const ctx = this.#ctx;
    const inflater = deflate === null
      ? null
      : new MessageInflater(deflate.clientWindowBits, deflate.clientContextTakeover);
    this.#reader = new MessageReader(this, ctx.maxPayloadLength, inflater);
    const copyBelow = this.#transport.readChunks.smallCopiesCheaper ? SMALL_PIECE : 0;
    return this.#parser = new FrameParser(this, deflate === null ? 0 : RSV1, copyBelow);
  }

  /** Parses `chunk`, keeping what follows a pause for later. */
  #parse(chunk: Uint8Array): void {
    const parser = this.#parser ?? this.#startReading();
    let rest = chunk;
    let used = parser.push(rest);
    // The parser stops early after a handler paused (or a close frame stopped reading).
    while (used < rest.length && this.#reading) {
      rest = rest.subarray(used);
      if (this.#pauses !== 0) {
        this.#hold(rest);
        break;
      }
      used = parser.push(rest); // paused and resumed within one handler call
    }
    const error = parser.error;
    if (error !== 0 && this.#reading) this.#fail(error);
  }

  /** Keeps bytes to parse on resume; a view of the chunk, which the adapter then must not reuse. */
  #hold(bytes: Uint8Array): void {
    this.#retained = true;
    const held = this.#held;
    if (held === null) {
      this.#held = bytes;
      return;
    }
    const joined = new Uint8Array(held.length + bytes.length);
    joined.set(held);
    joined.set(bytes, held.length);
    this.#held = joined;
  }

  /**
   * The rest of the data frame being assembled, right in the message buffer: read there, its
   * bytes are not copied from a read buffer again. Only for large remainders, as a read into the
   * target stops at the frame's end.
   */
  readTarget(): Uint8Array | null {
    const parser = this.#parser;
    return this.#reading && parser !== null ? this.#reader!.readTarget(parser.payloadRemaining) : null;
  }

  drain(): void {
    if (this.#transport.pending === 0) this.#queue?.reclaim();
    // (A closing socket sent its owed pong before its close frame: see #sendClose.)
    if (this.#owedPongLength >= 0 && this.readyState === ReadyState.OPEN) this.#sendOwedPong();
    if (!this.#backpressured) return;
    this.#backpressured = false;
    if (this.readyState === ReadyState.OPEN) this.#invoke(this.#ctx.handler.drain);
  }

  close(): void {
    clearTimeout(this.#closeTimer);
    this.#reading = false;
    this.#pauses = 0;
    this.#held = null;
    this.#parser?.pause(); // dropped while parsing (a send past the limit): the rest of the chunk is moot
    this.#queue?.clear();
    this.#report(CloseCode.Abnormal, "");
    // server.close() then resolves in a microtask after the close handler's, queued by #report.
    this.#ctx.release(this);
  }

  // --- FrameHandler ----------------------------------------------------------------------------

  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number {
    if (opcode !== Opcode.Continuation && this.#overRate()) return Failure.MessageRate;
    return this.#reader!.onDataFrame(opcode, fin, rsv1, length);
  }

  onDataPayload(bytes: Uint8Array, end: boolean, copied: boolean): number {
    return this.#reader!.onDataPayload(bytes, end, copied);
  }

  onControlFrame(opcode: number, payload: Uint8Array): number {
    if (opcode === Opcode.Close) {
      const parsed = parseClosePayload(payload);
      if ("error" in parsed) return parsed.error;
      countIn(this.#counters.closeCodesReceived, parsed.code);
      this.#onCloseFrame(parsed.code, parsed.reason);
    } else if (this.#overRate()) {
      return Failure.MessageRate;
    } else if (this.readyState === ReadyState.OPEN && (opcode === Opcode.Pong || this.#pong(payload))) {
      const handler = opcode === Opcode.Ping ? this.#ctx.handler.ping : this.#ctx.handler.pong;
      // Copied for a handler only, so that a flood of pings allocates nothing without one.
      if (handler !== undefined) this.#invoke(handler, payload.slice());
    }
    return 0;
  }

  /**
   * Answers a ping; false when the pong dropped the connection. While the transport holds a
   * backlog, only the latest ping is answered, once it drains (RFC 6455 §5.5.3 allows it): a peer
   * that pings and never reads costs one small buffer, not a queued pong per ping.
   */
  #pong(payload: Uint8Array): boolean {
    if (this.#transport.pending === 0) return this.#control(Opcode.Pong, payload);
    (this.#owedPong ??= new Uint8Array(MAX_CONTROL_PAYLOAD)).set(payload);
    this.#owedPongLength = payload.length;
    return true;
  }

  /** Sends the pong owed since the backlog began; false when it dropped the connection. */
  #sendOwedPong(): boolean {
    const length = this.#owedPongLength;
    this.#owedPongLength = -1;
    return this.#control(Opcode.Pong, this.#owedPong!.subarray(0, length));
  }

  /** Charges a message or a ping or pong to the rate limit; true when the peer has no token left. */
  #overRate(): boolean {
    return this.#bucket !== null && this.readyState === ReadyState.OPEN && !this.#bucket.take();
  }

  // --- MessageSink -----------------------------------------------------------------------------

  /** Whether messages are wanted: data frames that come after a close started are discarded. */
  get accepting(): boolean {
    return this.readyState === ReadyState.OPEN;
  }

  /**
   * Hands a whole message to the handler; a borrowed view keeps the chunk it lies in, unless the
   * adapter reuses its read buffer and the message is not small: then it is copied out. With
   * `awaitMessages`, a promise the handler returns holds the next message back until it settles
   * (a rejection has closed the socket by then, see #handlerFailed).
   */
  message(data: string | Uint8Array, borrowed: boolean, size: number): void {
    if (borrowed) {
      if (this.#transport.readChunks.reused && data.length >= SMALL_PIECE) {
        data = (data as Uint8Array).slice();
      } else this.#retained = true;
    }
    const counters = this.#counters;
    counters.messagesReceived++;
    counters.payloadBytesReceived += size;
    const pending = this.#invoke(this.#ctx.handler.message, data);
    if (pending !== null && this.#ctx.awaitMessages) {
      this.#pause(PAUSED_FOR_HANDLER);
      pending.then(this.#handled ??= () => this.#unpause(PAUSED_FOR_HANDLER), this.#handled);
    }
  }

  /** Ends an awaited message handler's pause (made on the first one). */
  #handled: (() => void) | null = null;

  // --- Flow control ----------------------------------------------------------------------------

  /** See {@linkcode ServerWebSocket.pause}. */
  pause(): void {
    this.#pause(PAUSED_BY_USER);
  }

  /** See {@linkcode ServerWebSocket.resume}. */
  resume(): void {
    this.#unpause(PAUSED_BY_USER);
  }

  /**
   * Stops reading for `reason`: the parser stops after the callback under way, and the transport
   * reads no more. Only an open socket pauses: a closing one reads on for the peer's close frame.
   */
  #pause(reason: number): void {
    if (this.readyState !== ReadyState.OPEN) return;
    this.#pauses |= reason;
    this.#parser?.pause();
    if (!this.#transportPaused) {
      this.#transportPaused = true;
      this.#transport.pause();
    }
  }

  /** Lifts the pause for `reason`; when none is left, reads again. */
  #unpause(reason: number): void {
    if ((this.#pauses & reason) === 0) return;
    this.#pauses &= ~reason;
    if (this.#pauses === 0) this.#readAgain();
  }

  /**
   * Parses the bytes held while paused, then lets the transport read again, unless a handler
   * paused once more meanwhile. (Inside a parse nothing is held, so this never parses re-entrantly.)
   */
  #readAgain(): void {
    const held = this.#held;
    if (held !== null) {
      this.#held = null;
      this.#parse(held);
    }
    if (this.#pauses === 0 && this.#transportPaused) {
      this.#transportPaused = false;
      this.#transport.resume();
    }
  }

  #onCloseFrame(code: number, reason: string): void {
    this.#reading = false;
    this.#parser?.pause();
    // Echo the peer's code, as RFC 6455 §5.5.1 suggests (unless the echo dropped the connection).
    const echo = code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code, "");
    if (this.#closeSent || this.#sendClose(code, echo)) this.#finish(code, reason);
  }

  /**
   * Fails the connection: a close frame with the failure's code and the reason naming the rule,
   * then close the TCP connection.
   */
  #fail(failure: number): void {
    this.#reading = false;
    if (failure === Failure.MessageRate) this.#counters.drops.rateLimit++;
    const code = failureCode(failure);
    const reason = failureReason(failure, this.#ctx);
    if (this.#closeSent || this.#sendClose(code, encodeClosePayload(code, reason))) {
      this.#finish(code, reason);
    }
  }

  /** The closing handshake is done on our side: flush, half-close, and wait for the peer's FIN. */
  #finish(code: number, reason: string): void {
    this.#report(code, reason);
    this.#queue?.flush();
    this.#armCloseTimer();
    // Last, as an adapter may close (and clear the timer) at once when the peer is already gone.
    this.#transport.end();
  }

  #armCloseTimer(): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      this.#counters.drops.closeTimeout++;
      this.#transport.destroy();
    }, this.#ctx.closeTimeout);
  }

  /**
   * The socket is closed for its user: CLOSED and out of its topics at once, the close handler a
   * microtask later. The call that closed it (a send past the backlog limit, a publish, terminate)
   * may be the user's own, and must finish first: a publish reaches every subscriber before
   * anything the handler sends.
   */
  #report(code: number, reason: string): void {
    this.readyState = ReadyState.CLOSED;
    if (this.#reported) return;
    this.#reported = true;
    this.#leaveTopics();
    const onClose = this.#ctx.handler.close;
    if (onClose !== undefined) queueMicrotask(() => this.#invoke(onClose, code, reason));
  }

  // --- Sending ---------------------------------------------------------------------------------

  #out(): SendQueue {
    return this.#queue ??= new SendQueue(this.#transport);
  }

  /** See {@linkcode ServerWebSocket.send}. */
  send(data: MessageData, options?: SendOptions): SendStatus {
    if (
      typeof data === "string" && (options?.compress === false || this.compressionBits(data.length * 3) === 0)
    ) {
      // Text that goes out as it is (even at 3 bytes per code unit it stays under the compression
      // threshold) is encoded straight into the send buffer: its size is known once it is there.
      if (this.readyState !== ReadyState.OPEN) return "dropped";
      const queue = this.#out();
      const before = queue.bytes;
      queue.text(data);
      const wire = queue.bytes - before;
      this.#counters.wireBytesSent += wire;
      this.#countSent(payloadLength(wire));
      return this.#status();
    }
    const payload = messageBytes(data, "send");
    if (this.readyState !== ReadyState.OPEN) return "dropped";
    const bits = options?.compress === false ? 0 : this.compressionBits(payload.length);
    const body = bits === 0 ? payload : deflateMessage(payload, bits, this.#ctx.pubsub.compression.level);
    this.#frame(messageOpcode(data), body, bits !== 0);
    this.#countSent(payload.length);
    return this.#status();
  }

  /** Queues a frame carrying `payload` (RSV1 set when `rsv1`), counting its bytes. */
  #frame(opcode: number, payload: Uint8Array, rsv1 = false): void {
    this.#out().frame(opcode, payload, rsv1);
    this.#counters.wireBytesSent += frameHeaderSize(payload.length) + payload.length;
  }

  /** Counts a data message of `length` payload bytes (before compression) as sent. */
  #countSent(length: number): void {
    const counters = this.#counters;
    counters.messagesSent++;
    counters.payloadBytesSent += length;
  }

  /** The window bits to compress a message of `length` bytes with, or 0 to send it as it is. */
  compressionBits(length: number): number {
    const deflate = this.#deflate;
    return deflate !== null && length >= this.#ctx.pubsub.compression.threshold
      ? deflate.serverWindowBits
      : 0;
  }

  /** Queues an encoded frame that other sockets send too (so it is never changed): a delivery. */
  sendShared(frame: Uint8Array, length: number): SendStatus {
    this.#out().shared(frame);
    const counters = this.#counters;
    counters.deliveries++;
    counters.wireBytesSent += frame.length;
    this.#countSent(length);
    return this.#status();
  }

  /** What a send just did, closing the connection when the backlog passes the limit. */
  #status(): SendStatus {
    if (this.#droppedOverLimit()) return "dropped";
    if (this.#transport.pending > 0) {
      this.#backpressured = true;
      return "queued";
    }
    return "sent";
  }

  /**
   * Queues a frame Wisp sends of its own accord (pong, idle ping, close): it counts toward the
   * backlog limit like data. False when it dropped the connection.
   */
  #control(opcode: number, payload: Uint8Array): boolean {
    this.#frame(opcode, payload);
    return !this.#droppedOverLimit();
  }

  /** Drops the connection if its backlog passed `maxBufferedAmount`; true when it did. */
  #droppedOverLimit(): boolean {
    if (this.bufferedAmount <= this.#ctx.maxBufferedAmount) return false;
    // The peer does not read: a close frame would wait behind the backlog, so drop the link.
    this.#counters.drops.backlog++;
    this.terminate();
    return true;
  }

  /** See {@linkcode ServerWebSocket.ping}. */
  ping(data: MessageData): SendStatus {
    const payload = messageBytes(data, "ping");
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`ping data is ${payload.length} bytes; a ping carries at most 125`);
    }
    if (this.readyState !== ReadyState.OPEN) return "dropped";
    this.#frame(Opcode.Ping, payload);
    return this.#status();
  }

  /** See {@linkcode ServerWebSocket.subscribe}. */
  subscribe(topic: string): void {
    checkTopic(topic, "subscribe");
    if (this.readyState !== ReadyState.OPEN) return;
    (this.#topics ??= new Set()).add(topic);
    this.#ctx.pubsub.subscribe(topic, this);
  }

  /** See {@linkcode ServerWebSocket.unsubscribe}. */
  unsubscribe(topic: string): void {
    checkTopic(topic, "unsubscribe");
    if (this.#topics?.delete(topic)) this.#ctx.pubsub.unsubscribe(topic, this);
  }

  /** See {@linkcode ServerWebSocket.isSubscribed}. */
  isSubscribed(topic: string): boolean {
    return this.#topics?.has(topic) ?? false;
  }

  /** See {@linkcode ServerWebSocket.publish}. */
  publish(topic: string, data: MessageData): number {
    this.#counters.publishes++;
    return this.#ctx.pubsub.publish(topic, data, this);
  }

  /** See {@linkcode ServerWebSocket.subscriptions}. */
  get subscriptions(): string[] {
    return this.#topics === null ? [] : [...this.#topics];
  }

  /** Starts the closing handshake; see {@linkcode ServerWebSocket.close}. */
  closeWith(code: number, reason: string): void {
    if (typeof code !== "number") {
      throw new TypeError(`close code must be a number, not ${describeValue(code)}`);
    }
    if (typeof reason !== "string") {
      throw new TypeError(`close reason must be a string, not ${describeValue(reason)}`);
    }
    if (!Number.isInteger(code) || !isValidWireCloseCode(code)) {
      throw new RangeError(
        `close code ${code} may not be sent; use 1000, 1001-1003, 1007-1014 or 3000-4999`,
      );
    }
    const payload = encodeClosePayload(code, reason);
    if (payload.length - 2 > MAX_CLOSE_REASON_BYTES) {
      throw new RangeError(`close reason is ${payload.length - 2} bytes of UTF-8; the limit is 123`);
    }
    if (this.readyState !== ReadyState.OPEN) return;
    this.readyState = ReadyState.CLOSING;
    this.#leaveTopics();
    if (!this.#sendClose(code, payload)) return;
    this.#armCloseTimer();
    // A paused socket reads again, for the peer's close frame: the messages before it are discarded.
    this.#pauses = 0;
    this.#readAgain();
  }

  /** A closing socket can take no more messages, so it leaves its topics at once. */
  #leaveTopics(): void {
    if (this.#topics === null) return;
    for (const topic of this.#topics) this.#ctx.pubsub.unsubscribe(topic, this);
    this.#topics = null;
  }

  /**
   * Queues our close frame, after the pong owed to a ping that came before it (RFC 6455 §5.5.2: a
   * ping is answered unless a close frame came first, and nothing may follow our close frame);
   * false when either dropped the connection (see #control).
   */
  #sendClose(code: number, payload: Uint8Array): boolean {
    this.#closeSent = true;
    if (this.#owedPongLength >= 0 && !this.#sendOwedPong()) return false;
    countIn(this.#counters.closeCodesSent, code);
    return this.#control(Opcode.Close, payload);
  }

  /** Drops the connection without a closing handshake. */
  terminate(): void {
    this.#transport.destroy();
  }

  /**
   * Called by the server's idle sweep every `idleTimeout / 2`: after two silent sweeps the peer
   * gets a ping (with `sendPings`), after one more it is presumed dead and dropped.
   */
  keepAlive(sendPings: boolean): void {
    // A paused socket is not read, so its silence says nothing: the count starts again on resume.
    if (this.#active || this.#pauses !== 0) {
      this.#active = false;
      this.#silentSweeps = 0;
      return;
    }
    this.#silentSweeps++;
    this.#queue?.trim(); // a quiet socket keeps no send buffer
    if (this.#silentSweeps === 2 && sendPings && this.readyState === ReadyState.OPEN) {
      this.#control(Opcode.Ping, EMPTY);
    } else if (this.#silentSweeps >= 2) {
      this.#counters.drops.idle++;
      this.terminate();
    }
  }

  /**
   * Calls a user handler with fixed arguments (no rest array per message), catching failures.
   * Returns the promise an async handler returned, else null.
   */
  #invoke(fn: AnyHandler | undefined, a?: unknown, b?: unknown): Promise<unknown> | null {
    if (fn === undefined) return null;
    try {
      const result = fn.call(this.#ctx.handler, this.socket, a, b);
      if (result instanceof Promise) {
        result.catch(this.#onRejected ??= (error: unknown) => this.#handlerFailed(error));
        return result;
      }
    } catch (error) {
      this.#handlerFailed(error);
    }
    return null;
  }

  /** Catches async handlers' rejections (made on the first async handler call). */
  #onRejected: ((error: unknown) => void) | null = null;

  #handlerFailed(error: unknown): void {
    const onError = this.#ctx.handler.error;
    try {
      if (onError === undefined) this.#reportFailure("a WebSocket handler failed", error);
      else onError.call(this.#ctx.handler, this.socket, error);
    } catch (secondError) {
      this.#reportFailure("the WebSocket error handler failed", secondError);
    }
    if (this.readyState === ReadyState.OPEN) {
      this.closeWith(failureCode(Failure.HandlerFailed), failureReason(Failure.HandlerFailed, this.#ctx));
    }
  }

  /** Tells the server's `onEvent` that a handler failed with `error`. */
  #reportFailure(what: string, error: unknown): void {
    this.#ctx.report(failureEvent("websocket", what, error, this.socket.remoteAddress));
  }
}
