/**
 * One WebSocket connection: the glue between its transport, its {@linkcode Protocol} (the
 * rules), the send path, its read gate, its topics and the handlers. Users see it through
 * {@linkcode ServerWebSocket}.
 * @module
 */

import {
  CloseCode,
  type MessageData,
  ReadyState,
  type Recovery,
  type SocketControl,
  type TopicPosition,
} from "./api.ts";
import { closeFramePayload } from "./close.ts";
import type { DeflateParams } from "./deflate/negotiate.ts";
import { Opcode } from "./frame.ts";
import type { AnyHandler, HandlerRunner } from "./handler_runner.ts";
import type { Counters } from "./metrics.ts";
import type { ResolvedValues } from "./options.ts";
import { Protocol, type ProtocolSettings, type ProtocolSink } from "./protocol.ts";
import { checkTopic, type PubSub } from "./pubsub/pubsub.ts";
import { Subscriptions } from "./pubsub/subscriptions.ts";
import { Holding } from "./message_reader.ts";
import { type GatedReader, PAUSED_BY_USER, PAUSED_FOR_HANDLER, ReadGate } from "./read_gate.ts";
import { SMALL_PIECE, type Transport, type TransportEvents } from "./runtime/types.ts";
import { Sender, type SenderSettings } from "./sender.ts";
import { ServerWebSocket, type SocketFacts } from "./server_websocket.ts";

/** The settings a connection reads: the server's resolved options, by reference. */
export type ConnectionSettings =
  & ProtocolSettings
  & SenderSettings
  & Readonly<Pick<ResolvedValues, "closeTimeout" | "awaitMessages" | "transientMessages">>;

/** What the server shares with all its connections (the server itself). */
export interface ConnectionContext<T> {
  /** The server's resolved options. */
  readonly options: ConnectionSettings;
  /** The server's topics. */
  readonly pubsub: PubSub<Connection<T>>;
  /** The server's counters. */
  readonly counters: Counters;
  /** Called once when a connection's transport has closed. */
  socketClosed(connection: Connection<T>): void;
}

/**
 * The per-connection facts fixed by the handshake: the socket's, the agreed compression (or
 * null), and the handlers of its route.
 */
export type ConnectionInit<T> = Pick<SocketFacts<T>, "url" | "protocol" | "data"> & {
  deflate: DeflateParams | null;
  handlers: HandlerRunner<T>;
};

const EMPTY = new Uint8Array(0);

/**
 * Detaches the buffer of a transient message (it then reads as empty) so that its memory comes
 * back at once rather than at the next collection. (Node 20 has no `ArrayBuffer.prototype.transfer`:
 * a transfer through `structuredClone` detaches it too.)
 */
function detach(message: Uint8Array): void {
  const buffer = message.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  if (buffer.transfer !== undefined) buffer.transfer(0);
  else structuredClone(buffer, { transfer: [buffer] });
}

/** A rejection handled elsewhere (the handler runner reports it). */
function ignore(): void {}

/**
 * One WebSocket connection. Internal: users see it through {@linkcode ServerWebSocket}. Its send
 * path is its base class.
 */
export class Connection<T> extends Sender
  implements TransportEvents, ProtocolSink, SocketControl, GatedReader {
  /** The public face of this connection, handed to handlers. */
  readonly socket: ServerWebSocket<T>;
  readonly #ctx: ConnectionContext<T>;
  /** Calls this socket's handlers. */
  readonly #handlers: HandlerRunner<T>;
  readonly #protocol: Protocol;
  /** Made on the first pause. */
  #gate: ReadGate | null = null;
  /** Made on the first subscription. */
  #topics: Subscriptions<Connection<T>> | null = null;
  /** Whether the chunk being parsed was kept (a binary message viewing it, bytes held). */
  #retained = false;
  /** Set on every read; the server's idle sweep clears it. */
  #active = true;
  #silentSweeps = 0;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  /** Takes over `transport` once its handshake succeeded. */
  constructor(transport: Transport, ctx: ConnectionContext<T>, init: ConnectionInit<T>) {
    const deflate = init.deflate;
    super(transport, ctx.options, ctx.counters, deflate);
    this.#ctx = ctx;
    this.#handlers = init.handlers;
    const copyBelow = transport.readChunks.smallCopiesCheaper ? SMALL_PIECE : 0;
    this.#protocol = new Protocol(this, ctx.options, ctx.counters, deflate, copyBelow);
    this.socket = new ServerWebSocket(this, {
      data: init.data,
      url: init.url,
      protocol: init.protocol,
      extensions: deflate?.response ?? "",
      remoteAddress: transport.remoteAddress,
    });
  }

  /** A {@linkcode ReadyState} value. */
  get readyState(): number {
    return this.#protocol.state;
  }

  /** Announces the open socket and parses any frames that came with the handshake. */
  start(early: Uint8Array | null): void {
    this.#call(this.#handlers.handlers.open);
    if (early !== null && early.length > 0) this.data(early);
  }

  // --- TransportEvents: reading ----------------------------------------------------------------

  /** See {@linkcode TransportEvents.data}. */
  data(chunk: Uint8Array): boolean {
    this.counters.wireBytesReceived += chunk.length;
    this.#active = true;
    if (!this.#protocol.reading) return false;
    this.#retained = false;
    if (this.#gate?.paused) this.#hold(chunk); // a read that was under way when the socket paused
    else this.parse(chunk);
    return this.#retained;
  }

  /** Parses `chunk`, holding what follows a pause for later (see {@linkcode GatedReader.parse}). */
  parse(chunk: Uint8Array): void {
    const protocol = this.#protocol;
    let rest = chunk;
    let used = protocol.receive(rest);
    // The protocol stops early after a handler paused (or reading ended).
    while (used < rest.length && protocol.reading) {
      rest = rest.subarray(used);
      if (this.#gate!.paused) return this.#hold(rest);
      used = protocol.receive(rest); // paused and resumed within one handler call
    }
  }

  #hold(bytes: Uint8Array): void {
    this.#retained = true;
    this.#gate!.hold(bytes);
  }

  /** See {@linkcode TransportEvents.readTarget}: the rest of a large frame, into its message. */
  readTarget(): Uint8Array | null {
    return this.#protocol.readTarget();
  }

  /** See {@linkcode TransportEvents.drain}. */
  drain(): void {
    const owed = this.drained();
    this.#protocol.drained();
    if (owed && this.readyState === ReadyState.OPEN) this.#call(this.#handlers.handlers.drain);
  }

  /** See {@linkcode TransportEvents.closed}: the connection is gone. */
  closed(): void {
    clearTimeout(this.#closeTimer);
    this.#gate?.clear();
    this.discard();
    if (this.#protocol.aborted()) this.#tellClosed(CloseCode.Abnormal, "");
    // server.close() then resolves in a microtask after the close handler's, queued by #tellClosed.
    this.#ctx.socketClosed(this);
  }

  // --- ProtocolSink ----------------------------------------------------------------------------

  /** See {@linkcode ProtocolSink.backlog}. */
  get backlog(): number {
    return this.transport.pending;
  }

  /**
   * Hands a whole message to the handler; a borrowed view keeps the chunk it lies in, unless the
   * adapter reuses its read buffer and the message is not small: then it is copied out. With
   * `awaitMessages`, a promise the handler returns holds the next message back until it settles
   * (a rejection has closed the socket by then). With `transientMessages`, a binary message is a
   * buffer of its own, detached once the handler is done with it.
   */
  message(data: string | Uint8Array, holding: number, size: number): void {
    const options = this.#ctx.options;
    const transient = options.transientMessages && typeof data !== "string";
    if (transient) {
      if (holding !== Holding.Owned) data = (data as Uint8Array).slice();
    } else if (holding === Holding.Borrowed) {
      if (this.transport.readChunks.reused && data.length >= SMALL_PIECE) {
        data = (data as Uint8Array).slice();
      } else this.#retained = true;
    }
    const counters = this.counters;
    counters.messagesReceived++;
    counters.payloadBytesReceived += size;
    const pending = this.#call(this.#handlers.handlers.message, data);
    if (pending !== null && options.awaitMessages) {
      this.#pause(PAUSED_FOR_HANDLER);
      pending.then(this.#handled ??= () => this.#gate!.unpause(PAUSED_FOR_HANDLER), this.#handled);
      if (transient) pending.finally(() => detach(data as Uint8Array)).catch(ignore);
    } else if (transient) detach(data as Uint8Array);
  }

  /** Ends an awaited message handler's pause (made on the first one). */
  #handled: (() => void) | null = null;

  /** A ping or pong for the handlers; copied for a handler only, so a flood allocates nothing without one. */
  heard(opcode: number, payload: Uint8Array): void {
    const handlers = this.#handlers.handlers;
    const handler = opcode === Opcode.Ping ? handlers.ping : handlers.pong;
    if (handler !== undefined) this.#call(handler, payload.slice());
  }

  /** Our side of the closing handshake is done: tell the user, flush, half-close, wait for the FIN. */
  finished(code: number, reason: string): void {
    this.#tellClosed(code, reason);
    this.flush();
    this.#armCloseTimer();
    // Last, as an adapter may close (and clear the timer) at once when the peer is already gone.
    this.transport.end();
  }

  #armCloseTimer(): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      this.counters.drops.closeTimeout++;
      this.transport.destroy();
    }, this.#ctx.options.closeTimeout);
  }

  /**
   * The socket is closed for its user (readyState is CLOSED): out of its topics at once, the close
   * handler a microtask later. The call that closed it (a send past the backlog limit, a publish,
   * terminate) may be the user's own, and must finish first: a publish reaches every subscriber
   * before anything the handler sends.
   */
  #tellClosed(code: number, reason: string): void {
    this.#topics?.clear();
    const onClose = this.#handlers.handlers.close;
    if (onClose !== undefined) queueMicrotask(() => this.#call(onClose, code, reason));
  }

  // --- Flow control ----------------------------------------------------------------------------

  /** See {@linkcode ServerWebSocket.pause}. */
  pause(): void {
    this.#pause(PAUSED_BY_USER);
  }

  /** See {@linkcode ServerWebSocket.resume}. */
  resume(): void {
    this.#gate?.unpause(PAUSED_BY_USER);
  }

  /** Stops reading for `reason`. Only an open socket pauses: a closing one reads on for the peer's close frame. */
  #pause(reason: number): void {
    if (this.readyState === ReadyState.OPEN) {
      (this.#gate ??= new ReadGate(this.transport, this)).pause(reason);
    }
  }

  /** See {@linkcode GatedReader.stopParsing}. */
  stopParsing(): void {
    this.#protocol.stop();
  }

  // --- Topics ----------------------------------------------------------------------------------

  /** See {@linkcode ServerWebSocket.subscribe}. */
  subscribe(topic: string): void {
    checkTopic(topic, "subscribe");
    if (this.readyState !== ReadyState.OPEN) return;
    (this.#topics ??= new Subscriptions(this.#ctx.pubsub, this)).add(topic);
  }

  /** See {@linkcode ServerWebSocket.unsubscribe}. */
  unsubscribe(topic: string): void {
    checkTopic(topic, "unsubscribe");
    this.#topics?.delete(topic);
  }

  /** See {@linkcode ServerWebSocket.isSubscribed}. */
  isSubscribed(topic: string): boolean {
    return this.#topics?.has(topic) ?? false;
  }

  /** See {@linkcode ServerWebSocket.subscriptions}. */
  get subscriptions(): string[] {
    return this.#topics?.list() ?? [];
  }

  /** See {@linkcode ServerWebSocket.recover}. */
  recover(topic: string, since: TopicPosition | null): Promise<Recovery> {
    checkTopic(topic, "recover");
    const pubsub = this.#ctx.pubsub;
    try {
      if (this.readyState !== ReadyState.OPEN) throw new TypeError("recover() needs an open socket");
      // Subscribed first: what is published while the missed messages go out waits for them (or,
      // from this process's own history, cannot come between, as both happen in this turn).
      (this.#topics ??= new Subscriptions(pubsub, this)).add(topic);
      return pubsub.recover(topic, since, this);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** See {@linkcode ServerWebSocket.publish}. */
  publish(topic: string, data: MessageData): number {
    this.counters.publishes++;
    return this.#ctx.pubsub.publish(topic, data, this);
  }

  // --- Closing ---------------------------------------------------------------------------------

  /** Starts the closing handshake; see {@linkcode ServerWebSocket.close}. */
  close(code: number, reason: string): void {
    const payload = closeFramePayload(code, reason);
    if (this.readyState !== ReadyState.OPEN) return;
    this.#topics?.clear(); // a closing socket can take no more messages
    if (!this.#protocol.close(code, reason, payload)) return;
    this.#armCloseTimer();
    // A paused socket reads again, for the peer's close frame: the messages before it are discarded.
    this.#gate?.open();
  }

  /**
   * Called by the server's idle sweep every `idleTimeout / 2`: after two silent sweeps the peer
   * gets a ping (with `sendPings`), after one more it is presumed dead and dropped.
   */
  keepAlive(sendPings: boolean): void {
    // A paused socket is not read, so its silence says nothing: the count starts again on resume.
    if (this.#active || this.#gate?.paused) {
      this.#active = false;
      this.#silentSweeps = 0;
      return;
    }
    this.#silentSweeps++;
    this.trim(); // a quiet socket keeps no send buffer
    if (this.#silentSweeps === 2 && sendPings && this.readyState === ReadyState.OPEN) {
      this.control(Opcode.Ping, EMPTY);
    } else if (this.#silentSweeps >= 2) {
      this.counters.drops.idle++;
      this.terminate();
    }
  }

  // --- Handlers --------------------------------------------------------------------------------

  /** Calls a handler for this socket; the promise an async one returned, else null. */
  #call(fn: AnyHandler | undefined, a?: unknown, b?: unknown): Promise<unknown> | null {
    return this.#handlers.call(fn, this, a, b);
  }

  /** See {@linkcode Sender.droppedMessage}. */
  protected droppedMessage(data: MessageData): void {
    const onDropped = this.#handlers.handlers.dropped;
    if (onDropped !== undefined) queueMicrotask(() => this.#call(onDropped, data));
  }

  /** Catches async handlers' rejections (made on the first async handler call). */
  get rejected(): (error: unknown) => void {
    return this.#rejected ??= (error: unknown) => this.#handlers.failed(this.socket, error);
  }

  #rejected: ((error: unknown) => void) | null = null;
}
