/**
 * The rules of one WebSocket connection once its handshake is done, with no I/O and no timers:
 * bytes in (through the frame parser and message reader), decisions out to a
 * {@linkcode ProtocolSink}. The closing handshake, failing the connection, answering pings
 * (with the owed pong) and the message rate are decided here, in one state machine: the socket's
 * {@linkcode ReadyState}, with records of the close frames sent and received. The connection
 * around it writes, arms the close timer and calls the handlers.
 * @module
 */

import { CloseCode, ReadyState } from "./api.ts";
import {
  encodeClosePayload,
  Failure,
  failureCode,
  type FailureLimits,
  failureReason,
  parseClosePayload,
} from "./close.ts";
import { MessageInflater } from "./deflate/codec.ts";
import type { DeflateParams } from "./deflate/negotiate.ts";
import { type FrameHandler, FrameParser, MAX_CONTROL_PAYLOAD, Opcode, RSV1 } from "./frame.ts";
import { MessageReader, type MessageSink } from "./message_reader.ts";
import { type Counters, countIn } from "./metrics.ts";
import type { ResolvedValues } from "./options.ts";
import { BACKLOG_THRESHOLD } from "./runtime/types.ts";
import { TokenBucket } from "./token_bucket.ts";

/** The settings the protocol reads: the server's resolved options, by reference. */
export type ProtocolSettings =
  & FailureLimits
  & Readonly<Pick<ResolvedValues, "maxMessageBurst">>;

/** Where the protocol's decisions go: the connection around it. */
export interface ProtocolSink {
  /**
   * Bytes the transport holds that the operating system has not taken yet (this turn's frames not
   * counted: they go out at the end of the turn, and a drain follows only a backlog).
   */
  readonly backlog: number;
  /**
   * Queues a frame the protocol sends of its own accord (a pong, a close frame); false when that
   * dropped the connection (its backlog passed the limit), which then ended through `aborted`.
   */
  control(opcode: number, payload: Uint8Array): boolean;
  /** A whole data message (see {@linkcode MessageSink.message}). */
  message(data: string | Uint8Array, holding: number, size: number): void;
  /** A ping (answered already) or a pong arrived on an open connection; `payload` is valid during the call. */
  heard(opcode: number, payload: Uint8Array): void;
  /**
   * The closing handshake is over on our side (close frames both ways, or our close frame after a
   * failure): the user is told `code` and `reason`, what is queued goes out, then FIN.
   */
  finished(code: number, reason: string): void;
}

/** A close frame as sent or received. */
export interface CloseRecord {
  /** Its code (1005 for a received close frame without one). */
  readonly code: number;
  /** Its reason. */
  readonly reason: string;
}

const EMPTY = new Uint8Array(0);

/**
 * One connection's protocol state. It makes its frame parser and message reader with the first
 * bytes (an idle socket stays small) and implements what they call back into.
 */
export class Protocol implements FrameHandler, MessageSink {
  /** OPEN, then CLOSING once our close frame went first, then CLOSED (see {@linkcode ReadyState}). */
  state: number = ReadyState.OPEN;
  /** Our close frame, once sent. */
  closeSent: CloseRecord | null = null;
  /** The peer's close frame, once received. */
  closeReceived: CloseRecord | null = null;
  readonly #sink: ProtocolSink;
  readonly #settings: ProtocolSettings;
  readonly #counters: Counters;
  /** What permessage-deflate was agreed on, or null. */
  readonly #deflate: DeflateParams | null;
  /** Payload pieces under this many bytes are copied out of the read chunk (see `ReadChunks`). */
  readonly #copyBelow: number;
  #parser: FrameParser | null = null;
  #reader: MessageReader | null = null;
  /** What the peer may still send under `maxMessagesPerSecond`, or null without a limit. */
  readonly #bucket: TokenBucket | null;
  /** The latest ping's payload while its pong waits for the backlog to drain (made on first use). */
  #owedPong: Uint8Array | null = null;
  /** Length of the owed pong's payload, or -1 when no pong is owed. */
  #owedPongLength = -1;

  /** A protocol deciding for `sink`, under `settings`, counting in `counters`. */
  constructor(
    sink: ProtocolSink,
    settings: ProtocolSettings,
    counters: Counters,
    deflate: DeflateParams | null,
    copyBelow: number,
  ) {
    this.#sink = sink;
    this.#settings = settings;
    this.#counters = counters;
    this.#deflate = deflate;
    this.#copyBelow = copyBelow;
    this.#bucket = settings.maxMessagesPerSecond === 0
      ? null
      : new TokenBucket(settings.maxMessagesPerSecond, settings.maxMessageBurst);
  }

  /** Whether frames are still read: until the peer's close frame, a failure, or the end. */
  get reading(): boolean {
    return this.state !== ReadyState.CLOSED;
  }

  /**
   * Parses `chunk` (unmasking it in place); returns how many bytes were used: all, unless
   * {@linkcode Protocol.stop} was called from a callback, or reading ended.
   */
  receive(chunk: Uint8Array): number {
    const parser = this.#parser ?? this.#startReading();
    const used = parser.push(chunk);
    if (parser.error !== 0 && this.reading) this.fail(parser.error);
    return used;
  }

  /** Stops the `receive` under way after the callback that calls this (the socket paused). */
  stop(): void {
    this.#parser?.pause();
  }

  /**
   * The rest of the data frame being assembled, right in the message buffer, when large enough
   * to be worth a read of its own there; null otherwise.
   */
  readTarget(): Uint8Array | null {
    const parser = this.#parser;
    return this.reading && parser !== null ? this.#reader!.readTarget(parser.payloadRemaining) : null;
  }

  #startReading(): FrameParser {
    const deflate = this.#deflate;
    const inflater = deflate === null
      ? null
      : new MessageInflater(deflate.clientWindowBits, deflate.clientContextTakeover);
    this.#reader = new MessageReader(this, this.#settings.maxPayloadLength, inflater);
    return this.#parser = new FrameParser(this, deflate === null ? 0 : RSV1, this.#copyBelow);
  }

  // --- FrameHandler ----------------------------------------------------------------------------

  /** See {@linkcode FrameHandler.onDataFrame}: a new message is charged to the rate first. */
  onDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): number {
    if (opcode !== Opcode.Continuation && this.#overRate()) return Failure.MessageRate;
    return this.#reader!.onDataFrame(opcode, fin, rsv1, length);
  }

  /** See {@linkcode FrameHandler.onDataPayload}. */
  onDataPayload(bytes: Uint8Array, end: boolean, copied: boolean): number {
    return this.#reader!.onDataPayload(bytes, end, copied);
  }

  /** See {@linkcode FrameHandler.onControlFrame}: close frames, pings (answered) and pongs. */
  onControlFrame(opcode: number, payload: Uint8Array): number {
    if (opcode === Opcode.Close) {
      const parsed = parseClosePayload(payload);
      if ("error" in parsed) return parsed.error;
      countIn(this.#counters.closeCodesReceived, parsed.code);
      this.#closeFrameReceived(parsed);
    } else if (this.#overRate()) {
      return Failure.MessageRate;
    } else if (this.state === ReadyState.OPEN && (opcode === Opcode.Pong || this.#pong(payload))) {
      this.#sink.heard(opcode, payload);
    }
    return 0;
  }

  // --- MessageSink -----------------------------------------------------------------------------

  /** Whether messages are wanted: data that comes after a close started is discarded. */
  get accepting(): boolean {
    return this.state === ReadyState.OPEN;
  }

  /** See {@linkcode MessageSink.message}. */
  message(data: string | Uint8Array, holding: number, size: number): void {
    this.#sink.message(data, holding, size);
  }

  // --- Ping and pong ---------------------------------------------------------------------------

  /**
   * Answers a ping; false when the pong dropped the connection. A pong goes out at once unless a
   * real backlog waits (past {@linkcode BACKLOG_THRESHOLD}, not a write still in flight): then
   * only the latest ping is answered, once it drains (RFC 6455 §5.5.3 allows it), so a peer that
   * pings and never reads costs one small buffer, not a pong queued per ping.
   */
  #pong(payload: Uint8Array): boolean {
    if (this.#sink.backlog <= BACKLOG_THRESHOLD) {
      this.#owedPongLength = -1; // this answer stands for any ping before it
      return this.#sink.control(Opcode.Pong, payload);
    }
    (this.#owedPong ??= new Uint8Array(MAX_CONTROL_PAYLOAD)).set(payload);
    this.#owedPongLength = payload.length;
    return true;
  }

  /** The backlog drained: the owed pong goes out (a closing socket sent it before its close frame). */
  drained(): void {
    if (this.#owedPongLength >= 0 && this.state === ReadyState.OPEN) this.#sendOwedPong();
  }

  /** Sends the owed pong; false when it dropped the connection. */
  #sendOwedPong(): boolean {
    const length = this.#owedPongLength;
    this.#owedPongLength = -1;
    return this.#sink.control(Opcode.Pong, this.#owedPong!.subarray(0, length));
  }

  /** Charges a message, ping or pong to the rate limit; true when the peer has no token left. */
  #overRate(): boolean {
    return this.#bucket !== null && this.state === ReadyState.OPEN && !this.#bucket.take();
  }

  // --- Closing ---------------------------------------------------------------------------------

  /**
   * Starts the closing handshake from our side (`payload` encodes `code` and `reason`, checked
   * already): CLOSING, our close frame queued. False when that dropped the connection. Only an
   * open connection closes so.
   */
  close(code: number, reason: string, payload: Uint8Array): boolean {
    this.state = ReadyState.CLOSING;
    return this.#sendClose({ code, reason }, payload);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): a close frame with the failure's code and a reason
   * naming the rule, then our side is finished.
   */
  fail(failure: number): void {
    this.#parser?.pause();
    if (failure === Failure.MessageRate) this.#counters.drops.rateLimit++;
    const code = failureCode(failure);
    const reason = failureReason(failure, this.#settings);
    this.#finishAfter({ code, reason }, encodeClosePayload(code, reason));
  }

  /** The peer's close frame: echo its code (RFC 6455 §5.5.1) unless ours went first, then finish. */
  #closeFrameReceived(received: CloseRecord): void {
    this.closeReceived = received;
    this.#parser?.pause();
    const code = received.code;
    this.#finishAfter(
      received,
      code === CloseCode.NoStatus ? EMPTY : encodeClosePayload(code, ""),
    );
  }

  /** Sends our close frame (unless one went already), then tells the sink the handshake is over. */
  #finishAfter(close: CloseRecord, payload: Uint8Array): void {
    if (this.closeSent !== null || this.#sendClose(close, payload)) {
      this.state = ReadyState.CLOSED;
      this.#sink.finished(close.code, close.reason);
    }
  }

  /**
   * Queues our close frame, after the pong owed to a ping that came before it (RFC 6455 §5.5.2:
   * a ping is answered unless a close frame came first, and nothing may follow our close frame).
   * False when either dropped the connection.
   */
  #sendClose(close: CloseRecord, payload: Uint8Array): boolean {
    this.closeSent = close;
    if (this.#owedPongLength >= 0 && !this.#sendOwedPong()) return false;
    countIn(this.#counters.closeCodesSent, close.code);
    return this.#sink.control(Opcode.Close, payload);
  }

  /**
   * The connection is gone (the peer left, or it was dropped). Returns true when the user has not
   * been told of a close yet: it then ended abnormally (1006).
   */
  aborted(): boolean {
    this.#parser?.pause(); // dropped while parsing (a send past the limit): the rest of the chunk is moot
    if (this.state === ReadyState.CLOSED) return false;
    this.state = ReadyState.CLOSED;
    return true;
  }
}
