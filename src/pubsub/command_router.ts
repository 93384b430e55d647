/**
 * Commands to the Redis nodes that own their keys, pipelined on one connection per node, in the
 * order they were given, across lost connections, redirects and refusals: a command is held (and
 * counted against a byte limit) until its reply comes. A `MOVED` updates the slot map; a map that
 * changes holds every node back until what was in flight has been answered, so that commands of
 * one slot never overtake each other on their way to a new owner.
 * @module
 */

import { FIRST_RETRY_MS } from "./backoff.ts";
import { Fifo } from "./fifo.ts";
import {
  isStandalone,
  parseClusterShards,
  parseClusterSlots,
  parseRedirect,
  SEEDS,
  type SlotRange,
  type Topology,
} from "./cluster.ts";
import { type Address, addressText, type LinkOwner, type LinkSettings, RedisLink } from "./redis_link.ts";
import { encodeCommand, RespError, type RespLimits, type RespValue } from "./resp.ts";

/** A command for the node that owns its slot. */
export interface Command {
  /** The slot of its keys (any slot when it has none and any node will do). */
  readonly slot: number;
  /** The bytes it holds, counted against the limit until its reply comes. */
  readonly size: number;
  /** Its bytes; `resent` when it goes again after a connection was lost before its reply came. */
  encode(resent: boolean): Uint8Array;
  /** Its reply: a value, or an error that is neither a redirect nor a refusal worth retrying. */
  done(reply: RespValue): void;
  /** It gets no reply, saying why: over the limit, lost in flight (when not resent), or closed. */
  dropped(why: DropReason): void;
}

/** Why a command got no reply: too many bytes waited, its connection was lost, the router closed. */
export type DropReason = "limit" | "lost" | "closed";

/** How a router behaves. */
export interface RouterOptions {
  /** What its connections are for, in messages (`"publisher"`). */
  role: string;
  /**
   * Whether a command in flight on a connection that was lost goes again on the next one (it may
   * then reach Redis twice: `encode` is told). Otherwise it is dropped.
   */
  resend: boolean;
  /** Commands written first on every new connection (and again after a `NOSCRIPT`). */
  preamble: readonly Uint8Array[];
  /** The most a reply may announce. */
  limits: RespLimits;
  /** Whether a Redis still loading its data serves these commands (see `LinkOptions`). */
  servesWhileLoading: boolean;
  /** Bytes of commands it may hold; more are dropped. */
  maxBytes: number;
  /** Where the links' events go. */
  events: Pick<LinkOwner, "report" | "failed">;
  /** Called after the slot map changed (readers and subscribers follow it). */
  mapChanged?(): void;
}

/** A command with its place in line. */
interface Entry {
  readonly command: Command;
  /** Order of issue: commands are written in this order to each node. */
  readonly seq: number;
  /** Whether it was in flight on a connection that was lost. */
  resent: boolean;
  /** The node a migration (`ASK`) sends it to, once. */
  ask: Address | null;
}

/** Refusals that say "not now": the command is sent again after a pause. */
const TRANSIENT = /^(TRYAGAIN|CLUSTERDOWN|LOADING|MASTERDOWN|BUSY|NOSCRIPT|READONLY)\b/;
/** The longest pause before commands refused for a while go again (it doubles from the first). */
const LAST_PAUSE_MS = 2_000;

/** How long `settle` waits at most. */
const SETTLE_MS = 1_000;

const ASKING = encodeCommand(["ASKING"]);
const CLUSTER_SHARDS = encodeCommand(["CLUSTER", "SHARDS"]);
const CLUSTER_SLOTS = encodeCommand(["CLUSTER", "SLOTS"]);

/** One node's connection and its commands. */
class Node {
  /** Commands to write once the connection is up (and no retry waits), by `seq`. */
  waiting: Entry[] = [];
  /** Commands written and not yet answered, in order. */
  readonly inflight = new Fifo<Entry>();
  /** Commands answered with a redirect or a refusal, to go again once the in-flight ones are answered. */
  retry: Entry[] = [];
  /** How long refused commands wait before they go again (0 after a redirect). */
  pause = 0;
  pauseMs = FIRST_RETRY_MS;
  timer: unknown = undefined;
  /** After refusals: one command at a time until one is taken, so that a pipeline never straddles a recovery. */
  probing = false;
  /** Whether the preamble must go before the next command. */
  preamble = true;
  link!: RedisLink;

  /** Its node's name: `SEEDS` until the map names the seed it reached. */
  constructor(public name: string) {}

  /** Whether it holds no command. */
  get idle(): boolean {
    return this.waiting.length === 0 && this.inflight.length === 0 && this.retry.length === 0;
  }
}

/** Inserts `entry` into `list` (ordered by seq), keeping the order. */
function insertBySeq(list: Entry[], entry: Entry): void {
  let at = list.length;
  while (at > 0 && list[at - 1].seq > entry.seq) at--;
  list.splice(at, 0, entry);
}

/** Sends commands to the nodes of a {@linkcode Topology}, in order, across failures. */
export class CommandRouter {
  readonly #topology: Topology;
  readonly #settings: LinkSettings;
  readonly #options: RouterOptions;
  readonly #nodes = new Map<string, Node>();
  /** Commands whose slot no known node owns (yet). */
  #unrouted: Entry[] = [];
  #seq = 0;
  #bytes = 0;
  /** Set while a changed map waits for every node's in-flight commands to be answered. */
  #barrier = false;
  /** The node asked for the map, while a reply is owed. */
  #asking: Node | null = null;
  /** Whether the map is to be asked for again (once a node is connected, or the current ask is answered). */
  #askAgain = false;
  #reconnectsOfGone = 0;
  /** Who waits for every command held to be answered. */
  #drainedWaiters: (() => void)[] = [];
  #closed = false;

  /** A router over `topology`, its links made with `settings`. */
  constructor(topology: Topology, settings: LinkSettings, options: RouterOptions) {
    this.#topology = topology;
    this.#settings = settings;
    this.#options = options;
  }

  /** Bytes of commands held: waiting, in flight or about to go again. */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** Whether the map is known and every node of it is connected. */
  get connected(): boolean {
    return this.#topology.known &&
      this.#topology.nodes().every((name) => this.#nodes.get(name)?.link.connected);
  }

  /** Reconnections of every link it has had. */
  get reconnects(): number {
    let count = this.#reconnectsOfGone;
    for (const node of this.#nodes.values()) count += node.link.reconnects;
    return count;
  }

  /** Starts connecting (to the seeds, to learn the map, when it discovers one). */
  start(): void {
    if (this.#topology.known) {
      for (const name of this.#topology.nodes()) this.#node(name);
    } else this.#askForMap();
  }

  /** Sends `command`; false when it was dropped at once (over the limit, or closed). */
  send(command: Command): boolean {
    if (this.#closed) {
      command.dropped("closed");
      return false;
    }
    if (this.#bytes + command.size > this.#options.maxBytes) {
      command.dropped("limit");
      return false;
    }
    this.#bytes += command.size;
    this.#route({ command, seq: this.#seq++, resent: false, ask: null });
    return true;
  }

  /** The map may have changed (a lost node, a failover): asks a node for it. */
  refresh(): void {
    if (this.#topology.discovers) this.#askForMap();
  }

  /** Takes a `MOVED` seen on another connection (a reader's): `slot` is `node`'s now. */
  moved(slot: number, node: Address): void {
    if (this.#topology.move(slot, node)) this.#mapChanged();
    this.refresh();
  }

  /**
   * Waits, when every node is connected, until every command held is answered (or dropped), but
   * at most a second: what was sent last before closing (a chat's "left", say) gets its chance.
   */
  async settle(): Promise<void> {
    if (!this.connected || this.#bytes === 0) return;
    const clock = this.#settings.clock;
    let timer: unknown;
    await new Promise<void>((resolve) => {
      this.#drainedWaiters.push(resolve);
      timer = clock.setTimeout(resolve, SETTLE_MS);
    });
    clock.clearTimeout(timer);
  }

  /** Stops: every link closes, and every command held is dropped. */
  close(): void {
    this.#closed = true;
    const held = [...this.#unrouted];
    for (const node of this.#nodes.values()) {
      node.link.shutdown();
      this.#settings.clock.clearTimeout(node.timer);
      held.push(...node.inflight.drain(), ...node.retry, ...node.waiting);
    }
    this.#nodes.clear();
    this.#unrouted = [];
    this.#free(this.#bytes);
    for (const entry of held) entry.command.dropped("closed");
  }

  /** `size` bytes are no longer held; once none is, whoever waits for that hears of it. */
  #free(size: number): void {
    this.#bytes -= size;
    if (this.#bytes > 0) return;
    const waiters = this.#drainedWaiters;
    this.#drainedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** The node named `name`, made (and connecting) on first use. */
  #node(name: string): Node {
    let node = this.#nodes.get(name);
    if (node !== undefined) return node;
    const made = node = new Node(name);
    const options = this.#options;
    made.link = new RedisLink(this.#settings, {
      role: options.role,
      target: () => this.#topology.address(made.name),
      pushes: false,
      limits: options.limits,
      servesWhileLoading: options.servesWhileLoading,
    }, {
      ready: () => this.#ready(made),
      down: () => this.#down(made),
      report: options.events.report,
      failed: (why) => {
        options.events.failed(why);
        if (this.#topology.known) this.refresh();
      },
    });
    this.#nodes.set(name, made);
    void made.link.open();
    return made;
  }

  /** Puts `entry` in line at the node that owns its slot (or where `ASK` sent it). */
  #route(entry: Entry): void {
    const name = entry.ask === null ? this.#topology.nodeFor(entry.command.slot) : addressText(entry.ask);
    if (name === null) {
      insertBySeq(this.#unrouted, entry);
      return;
    }
    const node = this.#node(name);
    insertBySeq(node.waiting, entry);
    this.#flush(node);
  }

  /** Writes what waits at `node`, unless it must wait itself. */
  #flush(node: Node): void {
    const link = node.link;
    if (this.#barrier || node.retry.length > 0 || !link.connected) return;
    if (node.preamble) {
      node.preamble = false;
      for (const command of this.#options.preamble) {
        link.write(command, (reply) => this.#checkPreamble(reply));
      }
    }
    while (node.waiting.length > 0 && !(node.probing && node.inflight.length > 0)) {
      const batch = node.probing ? node.waiting.splice(0, 1) : node.waiting;
      if (!node.probing) node.waiting = [];
      for (const entry of batch) {
        if (entry.ask !== null) link.write(ASKING);
        link.write(entry.command.encode(entry.resent), (reply) => this.#reply(node, entry, reply));
        node.inflight.push(entry);
      }
    }
  }

  /** The reply to `entry`, in flight at `node`. */
  #reply(node: Node, entry: Entry, reply: RespValue): void {
    node.inflight.shift();
    if (reply instanceof RespError) {
      const redirect = parseRedirect(reply);
      if (redirect !== null || TRANSIENT.test(reply.message)) {
        entry.ask = redirect?.kind === "ASK" ? redirect.node : null;
        node.retry.push(entry);
        if (redirect === null) {
          if (reply.message.startsWith("NOSCRIPT")) node.preamble = true;
          if (reply.message.startsWith("READONLY")) this.refresh(); // a primary that became a replica
          node.pause = node.pauseMs;
          node.pauseMs = Math.min(LAST_PAUSE_MS, node.pauseMs * 2);
        } else if (redirect.kind === "MOVED") {
          if (this.#topology.move(redirect.slot, redirect.node)) this.#mapChanged();
          this.refresh();
        }
        return this.#settle(node);
      }
    }
    this.#free(entry.command.size);
    node.pauseMs = FIRST_RETRY_MS;
    if (node.probing) {
      node.probing = false;
      this.#flush(node);
    }
    entry.command.done(reply);
    if (this.#barrier) this.#release();
  }

  /** Once nothing is in flight at `node`, its refused commands go again (after its pause). */
  #settle(node: Node): void {
    if (node.inflight.length > 0 || node.retry.length === 0) return;
    if (this.#barrier) return this.#release();
    const { clock } = this.#settings;
    clock.clearTimeout(node.timer);
    const pause = node.pause;
    node.pause = 0;
    node.timer = clock.setTimeout(() => {
      const retry = node.retry;
      node.retry = [];
      for (const entry of retry) {
        const to = entry.ask === null ? this.#topology.nodeFor(entry.command.slot) : addressText(entry.ask);
        if (pause > 0 && to !== null) this.#node(to).probing = true;
        this.#route(entry);
      }
      this.#flush(node);
    }, pause);
  }

  /** The map changed: every node holds back until what is in flight is answered. */
  #mapChanged(): void {
    this.#barrier = true;
    this.#release();
    this.#options.mapChanged?.();
  }

  /** Once nothing is in flight anywhere, every command held goes in line again, by the new map. */
  #release(): void {
    for (const node of this.#nodes.values()) if (node.inflight.length > 0) return;
    this.#barrier = false;
    const held = this.#unrouted;
    this.#unrouted = [];
    for (const node of this.#nodes.values()) {
      this.#settings.clock.clearTimeout(node.timer);
      held.push(...node.retry, ...node.waiting);
      node.retry = [];
      node.waiting = [];
    }
    held.sort((a, b) => a.seq - b.seq);
    this.#prune();
    for (const entry of held) this.#route(entry);
    for (const name of this.#topology.nodes()) this.#flush(this.#node(name));
  }

  /**
   * Closes the links to nodes that own no slot and hold no command. The seeds' link, once the map
   * is known, becomes the link of the node it reached, when that node needs one.
   */
  #prune(): void {
    const wanted = new Set(this.#topology.nodes());
    const seeds = this.#nodes.get(SEEDS), reached = seeds?.link.address;
    if (this.#topology.known && seeds !== undefined && reached != null) {
      const name = addressText(reached);
      if (wanted.has(name) && !this.#nodes.has(name)) {
        this.#nodes.delete(SEEDS);
        seeds.name = name;
        this.#nodes.set(name, seeds);
      }
    }
    for (const [name, node] of this.#nodes) {
      if (wanted.has(name) || !node.idle || node === this.#asking) continue;
      if (name === SEEDS && (!this.#topology.known || this.#askAgain)) continue;
      this.#reconnectsOfGone += node.link.reconnects;
      node.link.shutdown();
      this.#nodes.delete(name);
    }
  }

  /** `node`'s link is up. */
  #ready(node: Node): void {
    node.preamble = true;
    if (this.#askAgain && this.#asking === null) this.#askForMap();
    this.#flush(node);
  }

  /** `node`'s link was lost: what was in flight goes again on the next connection, or is dropped. */
  #down(node: Node): void {
    const lost = node.inflight.drain();
    if (this.#options.resend) {
      for (const entry of lost) {
        entry.resent = true;
        insertBySeq(node.waiting, entry);
      }
    } else {
      for (const entry of lost) {
        this.#free(entry.command.size);
        entry.command.dropped("lost");
      }
    }
    if (this.#asking === node) {
      this.#asking = null;
      this.#askAgain = true;
    }
    this.refresh();
    this.#settle(node);
    if (this.#barrier) this.#release();
  }

  /** Asks a connected node (or, when none is, a seed) for the slot map. */
  #askForMap(): void {
    if (this.#closed) return;
    if (this.#asking !== null) {
      this.#askAgain = true;
      return;
    }
    const node = [...this.#nodes.values()].find((candidate) => candidate.link.connected);
    if (node === undefined) {
      this.#askAgain = true;
      // A cluster whose known nodes are all gone may live on elsewhere: the seeds may know where.
      if (!this.#topology.known || !this.#topology.standalone) this.#node(SEEDS);
      return;
    }
    this.#askAgain = false;
    this.#asking = node;
    node.link.write(CLUSTER_SHARDS, (reply) => this.#map(node, reply, parseClusterShards));
  }

  /** A node's answer to `CLUSTER SHARDS` (or `CLUSTER SLOTS`, which older servers know). */
  #map(
    node: Node,
    reply: RespValue,
    parse: (reply: RespValue, asked: string) => SlotRange[] | null,
  ): void {
    const from = node.link.address!;
    if (reply instanceof RespError && parse === parseClusterShards && /unknown/i.test(reply.message)) {
      node.link.write(CLUSTER_SLOTS, (next) => this.#map(node, next, parseClusterSlots));
      return;
    }
    this.#asking = null;
    const ranges = reply instanceof RespError ? null : parse(reply, from.hostname);
    if (reply instanceof RespError ? !isStandalone(reply) : ranges === null) {
      // Asked again on the next connection, after the backoff.
      this.#askAgain = true;
      const why = reply instanceof RespError
        ? `refused the cluster map: ${reply.message}`
        : "sent a malformed cluster map";
      return node.link.drop(`Redis ${why}`);
    }
    if (this.#topology.apply(ranges, from)) this.#mapChanged();
    else this.#prune();
    if (this.#askAgain) this.#askForMap();
  }

  /** A reply to the preamble: only errors matter. */
  #checkPreamble(reply: RespValue): void {
    if (reply instanceof RespError) {
      this.#options.events.report({ type: "error", message: `Redis refused a script: ${reply.message}` });
    }
  }
}
