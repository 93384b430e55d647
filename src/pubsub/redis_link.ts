/**
 * One connection to a Redis server that comes back by itself: it reconnects with backoff whenever
 * it is lost, checks that Redis still answers, and pairs each reply with the command it answers.
 * Timers come from a {@linkcode Clock}, so that tests can drive the backoff without waiting.
 * @module
 */

import { runtimeConnect } from "../runtime/mod.ts";
import type { Transport, TransportEvents } from "../runtime/types.ts";
import type { BackplaneEvent } from "./backplane.ts";
import { Backoff, type Clock } from "./backoff.ts";
import { Fifo } from "./fifo.ts";
import {
  encodeCommand,
  RespError,
  type RespLimits,
  RespProtocolError,
  RespReader,
  type RespValue,
} from "./resp.ts";

/** Where a Redis server listens. */
export interface Address {
  /** Its host name or IP address. */
  hostname: string;
  /** Its port. */
  port: number;
}

/** `host:port` of `address`, as Redis writes node addresses. */
export function addressText(address: Address): string {
  return `${address.hostname}:${address.port}`;
}

/** What every link to one deployment shares: credentials, liveness checks, timers. */
export interface LinkSettings {
  /** The user for `AUTH` (empty for the default user). */
  username: string;
  /** The password for `AUTH` (empty for none). */
  password: string;
  /** Milliseconds between `PING`s; a connection that hears nothing for that long is made again. 0: none. */
  pingInterval: number;
  /** Where the link's timers come from. */
  clock: Clock;
}

/** How one link behaves. */
export interface LinkOptions {
  /** What it is for, to start its messages with (`"publisher"`, say). */
  role: string;
  /** Where to connect, asked at every attempt (so that a link can follow a server that moved). */
  target(): Address;
  /**
   * True for a connection in subscribe mode, whose replies are not answers to commands one by one
   * (every reply goes to the owner's `push`); false to pair replies with commands.
   */
  pushes: boolean;
  /** The most a reply may announce; more is taken for garbage (the connection is made again). */
  limits: RespLimits;
  /**
   * Whether a Redis that answers the first `PING` with `LOADING`, `MASTERDOWN` or `BUSY` serves
   * this link's commands anyway (pub/sub does; reading and writing keys does not).
   */
  servesWhileLoading: boolean;
}

/** What a link tells the one that owns it. */
export interface LinkOwner {
  /** The link is up (Redis has answered it): commands written from now on go to Redis. */
  ready(): void;
  /** A connection that was up is gone: replies still owed on it will not come. */
  down?(): void;
  /** A reply on a link that `pushes`. */
  push?(value: RespValue): void;
  /** A change of state or an error, for `onEvent`. */
  report(event: BackplaneEvent): void;
  /** A connection could not be made or was lost, saying why: it counts as an error. */
  failed(why: string): void;
}

/** The command sent on every new connection: its reply shows that Redis is there and serves us. */
const PING = encodeCommand(["PING"]);

/** A reply nobody waits for (a `PING` of the link's own). */
const ignore = (): void => {};

/**
 * A connection to Redis that reconnects with backoff whenever it is lost, and tells its owner
 * each time it is ready again. A connection counts as up only once Redis has answered its first
 * commands (`AUTH`, then `PING`): a server that accepts and then refuses or drops it (Redis at
 * `maxclients`, say) keeps the backoff growing.
 */
export class RedisLink {
  readonly #settings: LinkSettings;
  readonly #options: LinkOptions;
  readonly #owner: LinkOwner;
  #transport: Transport | null = null;
  #address: Address | null = null;
  #reader: RespReader;
  /** Replies still owed to the commands sent on connecting; the link is up when none is. */
  #owed = 0;
  /** Who waits for each reply owed to a command written since the link was up, in order. */
  readonly #waiting = new Fifo<(reply: RespValue) => void>();
  /** Why the current connection is being dropped, when it is dropped on purpose (reported already). */
  #dropping = "";
  readonly #backoff: Backoff;
  /** Checks every `pingInterval` that Redis was heard from since the last check, then pings. */
  #pinger: unknown = undefined;
  /** Whether anything came from Redis since the last check. */
  #heard = false;
  #closed = false;
  #up = false;
  /**
   * Whether the current connection has served its owner: a reply that is no error, or a full
   * `pingInterval` of being up. Only then does the backoff start again, so that a server that
   * takes connections and then refuses every command (a cluster that is down) keeps it growing.
   */
  #proven = false;
  /** Whether it had been up since it last reported a loss (so each loss is told once). */
  #wasUp = true;
  #connections = 0;
  /** What the runtime's connection tells the link. */
  readonly #events: TransportEvents = {
    data: (chunk) => this.#data(chunk),
    drain: () => {},
    closed: () => this.#close(),
  };

  /** A link for `owner`; it connects once `open` is called. */
  constructor(settings: LinkSettings, options: LinkOptions, owner: LinkOwner) {
    this.#settings = settings;
    this.#options = options;
    this.#owner = owner;
    this.#reader = new RespReader(options.limits);
    this.#backoff = new Backoff(settings.clock);
  }

  /** Whether commands written now go to Redis. */
  get connected(): boolean {
    return this.#up;
  }

  /** Where the current connection goes, or null without one. */
  get address(): Address | null {
    return this.#address;
  }

  /** How many times it connected again after losing a connection. */
  get reconnects(): number {
    return Math.max(0, this.#connections - 1);
  }

  /** Connects, and keeps connecting until shut down. */
  async open(): Promise<void> {
    const address = this.#options.target();
    const { username, password, pingInterval } = this.#settings;
    let transport: Transport;
    try {
      transport = await runtimeConnect()(address, this.#events);
    } catch (error) {
      return this.#retry(`cannot connect to ${addressText(address)} (${(error as Error).message})`, false);
    }
    if (this.#closed) return transport.destroy();
    this.#transport = transport;
    this.#address = address;
    this.#proven = false;
    this.#reader = new RespReader(this.#options.limits);
    this.#owed = 1;
    if (password !== "") {
      transport.write(encodeCommand(username === "" ? ["AUTH", password] : ["AUTH", username, password]));
      this.#owed++;
    }
    transport.write(PING);
    if (pingInterval > 0) {
      this.#heard = false;
      this.#armPinger(pingInterval);
    }
  }

  /**
   * Writes a command whose reply goes to `onReply` (on a link that does not push; default:
   * ignored). False when there is no connection to write it to (yet).
   */
  write(command: Uint8Array, onReply: (reply: RespValue) => void = ignore): boolean {
    if (!this.#up) return false;
    if (!this.#options.pushes) this.#waiting.push(onReply);
    this.#transport!.write(command);
    return true;
  }

  /** Drops the connection for `why` (an error event, so counted), to reconnect with backoff. */
  drop(why: string): void {
    if (this.#transport === null) return;
    this.#dropping = why;
    this.#owner.report({ type: "error", message: `${this.#options.role}: ${why}; reconnecting` });
    this.#transport.destroy();
  }

  /** Stops for good. */
  shutdown(): void {
    this.#closed = true;
    this.#backoff.cancel();
    this.#settings.clock.clearTimeout(this.#pinger);
    this.#transport?.destroy();
  }

  /** Bytes from Redis: replies, each to whoever waits for it. */
  #data(chunk: Uint8Array): boolean {
    this.#heard = true;
    let replies: RespValue[];
    try {
      replies = this.#reader.push(chunk);
    } catch (error) {
      if (!(error instanceof RespProtocolError)) throw error;
      this.drop(error.message);
      return false;
    }
    for (const reply of replies) {
      // Dropped while handling an earlier reply: the rest belongs to a connection given up.
      if (this.#transport === null || this.#dropping !== "") break;
      if (this.#owed > 0) {
        this.#greeted(reply);
      } else if (this.#options.pushes) {
        if (!(reply instanceof RespError)) this.#served();
        this.#owner.push!(reply);
      } else {
        const waiter = this.#waiting.shift();
        if (waiter === undefined) {
          this.drop("a reply that answers no command");
          break;
        }
        if (waiter !== ignore && !(reply instanceof RespError)) this.#served();
        waiter(reply);
      }
    }
    return false;
  }

  /** The connection is gone: the owner hears of it, and the link tries again after the backoff. */
  #close(): void {
    const wasUp = this.#up;
    this.#transport = null;
    this.#address = null;
    this.#up = false;
    this.#waiting.drain();
    this.#settings.clock.clearTimeout(this.#pinger);
    const dropped = this.#dropping;
    this.#dropping = "";
    if (this.#closed) return;
    if (wasUp) this.#owner.down?.();
    this.#retry(dropped || "connection lost", dropped !== "");
  }

  /** A reply to the commands sent on connecting. */
  #greeted(reply: RespValue): void {
    if (reply instanceof RespError && !this.#servesAnyway(reply)) {
      return this.drop(`Redis refused the connection: ${reply.message}`);
    }
    if (reply instanceof RespError) {
      this.#owner.report({
        type: "error",
        message: `${this.#options.role}: Redis answered ${reply.message}`,
      });
    }
    if (--this.#owed === 0) this.#ready();
  }

  /**
   * Whether an error answering the first commands still leaves the link working: a password given
   * to a Redis that has none, and for pub/sub also Redis loading its data, a replica cut off from
   * its primary, or a busy script (PING has none of the flags that let PUBLISH and SUBSCRIBE run then).
   */
  #servesAnyway(error: RespError): boolean {
    return /without any password configured/.test(error.message) ||
      (this.#options.servesWhileLoading && /^(LOADING|MASTERDOWN|BUSY)\b/.test(error.message));
  }

  /** Redis answered the first commands: the owner may write. */
  #ready(): void {
    this.#wasUp = true;
    this.#up = true;
    this.#connections++;
    this.#owner.report({
      type: "connected",
      message: `${this.#options.role} connected to ${addressText(this.#address!)}`,
    });
    this.#owner.ready();
  }

  /** The connection served its owner: the next loss waits the shortest time again. */
  #served(): void {
    if (this.#proven) return;
    this.#proven = true;
    this.#backoff.reset();
  }

  #armPinger(interval: number): void {
    this.#pinger = this.#settings.clock.setTimeout(() => this.#checkAlive(interval), interval);
  }

  /** Drops a connection Redis has not answered on for `interval` ms, else pings it. */
  #checkAlive(interval: number): void {
    if (!this.#heard) return this.drop(`no answer from Redis in ${interval} ms`);
    this.#heard = false;
    if (this.#up) this.#served();
    this.write(PING);
    this.#armPinger(interval);
  }

  /** Tries again after the backoff; `reported` when the failure was an error event already. */
  #retry(why: string, reported: boolean): void {
    if (this.#closed) return;
    const role = this.#options.role;
    if (!reported) this.#owner.failed(`${role}: ${why}`);
    if (this.#wasUp) {
      this.#wasUp = false;
      this.#owner.report({ type: "disconnected", message: `${role}: ${why}; reconnecting with backoff` });
    }
    this.#backoff.retry(() => void this.open());
  }
}
