/**
 * Which Redis server owns which key: one server for everything, or the primaries of a Redis
 * Cluster, each owning ranges of the 16384 slots, as `CLUSTER SHARDS` (Redis 7) or `CLUSTER
 * SLOTS` tell, and `MOVED` corrects. Pure: it reads replies, the links that ask live elsewhere.
 * @module
 */

import type { Address } from "./redis_link.ts";
import { addressText } from "./redis_link.ts";
import { type RespError, respText, type RespValue } from "./resp.ts";
import { SLOT_COUNT } from "./crc16.ts";

/** The node of the seed addresses given (tried in turn), before the map is known or without one. */
export const SEEDS = "seeds";

/** Slots `start` to `end` (inclusive) belong to the primary at `node`. */
export interface SlotRange {
  /** The first slot. */
  start: number;
  /** The last slot. */
  end: number;
  /** Where the primary listens. */
  node: Address;
}

/** A reply saying that a key lives elsewhere: for good (`MOVED`) or during a migration (`ASK`). */
export interface Redirect {
  /** `"MOVED"` or `"ASK"`. */
  kind: "MOVED" | "ASK";
  /** The key's slot. */
  slot: number;
  /** The node to ask. */
  node: Address;
}

/** The redirect an error reply is, or null when it is another error. */
export function parseRedirect(error: RespError): Redirect | null {
  const match = /^(MOVED|ASK) (\d+) (.*):(\d+)$/.exec(error.message);
  if (match === null) return null;
  return {
    kind: match[1] as "MOVED" | "ASK",
    slot: Number(match[2]),
    node: { hostname: match[3], port: Number(match[4]) },
  };
}

/** Whether `error` is a standalone Redis saying that it is no cluster. */
export function isStandalone(error: RespError): boolean {
  return /cluster support disabled/i.test(error.message);
}

/** The fields of a flat key, value, key, value array (how RESP2 writes a map). */
function fields(value: RespValue): Map<string, RespValue> | null {
  if (!Array.isArray(value) || value.length % 2 !== 0) return null;
  const map = new Map<string, RespValue>();
  for (let i = 0; i < value.length; i += 2) {
    const name = respText(value[i]);
    if (name === null) return null;
    map.set(name, value[i + 1]);
  }
  return map;
}

/** A slot number, or NaN. */
function slot(value: RespValue): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < SLOT_COUNT
    ? value
    : NaN;
}

/**
 * A node's address from the host Redis names (`endpoint` or `ip`), which may be empty or `?` when
 * the node does not know its own: then the host the reply came from.
 */
function nodeAddress(host: string | null, port: RespValue, asked: string): Address | null {
  if (typeof port !== "number" || !Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { hostname: host === null || host === "" || host === "?" ? asked : host, port };
}

/**
 * The primaries' slot ranges from a `CLUSTER SHARDS` reply, or null when it is not one. `asked` is
 * the host that answered.
 */
export function parseClusterShards(reply: RespValue, asked: string): SlotRange[] | null {
  if (!Array.isArray(reply)) return null;
  const ranges: SlotRange[] = [];
  for (const shard of reply) {
    const info = fields(shard);
    const slots = info?.get("slots"), nodes = info?.get("nodes");
    if (!Array.isArray(slots) || !Array.isArray(nodes) || slots.length % 2 !== 0) return null;
    let primary: Address | null = null;
    for (const node of nodes) {
      const about = fields(node);
      if (about === null) return null;
      if (respText(about.get("role") ?? null) !== "master") continue;
      const endpoint = respText(about.get("endpoint") ?? null);
      const host = endpoint === null || endpoint === "?" ? respText(about.get("ip") ?? null) : endpoint;
      primary = nodeAddress(host, about.get("port") ?? null, asked);
    }
    if (slots.length > 0 && primary === null) return null;
    for (let i = 0; i < slots.length; i += 2) {
      const start = slot(slots[i]), end = slot(slots[i + 1]);
      if (!(start <= end)) return null;
      ranges.push({ start, end, node: primary! });
    }
  }
  return ranges;
}

/** The primaries' slot ranges from a `CLUSTER SLOTS` reply, or null when it is not one. */
export function parseClusterSlots(reply: RespValue, asked: string): SlotRange[] | null {
  if (!Array.isArray(reply)) return null;
  const ranges: SlotRange[] = [];
  for (const range of reply) {
    if (!Array.isArray(range) || range.length < 3 || !Array.isArray(range[2]) || range[2].length < 2) {
      return null;
    }
    const start = slot(range[0]), end = slot(range[1]);
    const node = nodeAddress(respText(range[2][0]), range[2][1], asked);
    if (!(start <= end) || node === null) return null;
    ranges.push({ start, end, node });
  }
  return ranges;
}

/**
 * Where each key goes. Without discovery (classic pub/sub, where any node will do), everything
 * goes to {@linkcode SEEDS}. With it, the map is unknown until {@linkcode apply} is given the
 * answer of a seed: a standalone Redis then owns every slot, a cluster's primaries their ranges.
 * Nodes are named by `host:port`.
 */
export class Topology {
  readonly #seeds: readonly Address[];
  readonly #discover: boolean;
  #seedTurn = 0;
  /** Each slot's node, as an index into `#nodes`; -1 for a slot no node owns. Null while unknown. */
  #slots: Int16Array | null = null;
  #nodes: string[] = [];
  readonly #addresses = new Map<string, Address>();
  #standalone = false;

  /** A topology over `seeds`; `discover` to learn (and follow) a cluster's slot map. */
  constructor(seeds: readonly Address[], discover: boolean) {
    this.#seeds = seeds;
    this.#discover = discover;
  }

  /** Whether keys can be routed (the map is known, or not needed). */
  get known(): boolean {
    return !this.#discover || this.#slots !== null;
  }

  /** Whether every key goes to one server (no cluster, or no discovery). */
  get standalone(): boolean {
    return !this.#discover || this.#standalone;
  }

  /** Whether this topology learns a cluster's map (so MOVED and lost nodes call for a new one). */
  get discovers(): boolean {
    return this.#discover;
  }

  /** The node that owns `slot`: {@linkcode SEEDS} without discovery, null while unknown or unowned. */
  nodeFor(slot: number): string | null {
    if (!this.#discover) return SEEDS;
    const index = this.#slots?.[slot] ?? -1;
    return index < 0 ? null : this.#nodes[index];
  }

  /** The nodes of the map (every slot's owner). */
  nodes(): readonly string[] {
    return this.#discover ? this.#nodes : [SEEDS];
  }

  /** Where `node` listens; for {@linkcode SEEDS}, the next seed in turn. */
  address(node: string): Address {
    if (node === SEEDS) return this.#seeds[this.#seedTurn++ % this.#seeds.length];
    return this.#addresses.get(node) ?? this.#parse(node);
  }

  /**
   * Takes a seed's answer to `CLUSTER SHARDS`: its ranges, or null for a standalone Redis (which
   * then owns every slot), from the server at `from`. Returns whether the map changed.
   */
  apply(ranges: readonly SlotRange[] | null, from: Address): boolean {
    this.#standalone = ranges === null;
    const owners = ranges ?? [{ start: 0, end: SLOT_COUNT - 1, node: from }];
    const nodes: string[] = [];
    const slots = new Int16Array(SLOT_COUNT).fill(-1);
    for (const { start, end, node } of owners) {
      const name = addressText(node);
      let index = nodes.indexOf(name);
      if (index < 0) index = nodes.push(name) - 1;
      this.#addresses.set(name, node);
      slots.fill(index, start, end + 1);
    }
    const changed = this.#slots === null || nodes.length !== this.#nodes.length ||
      slots.some((index, slot) => (index < 0 ? null : nodes[index]) !== this.nodeFor(slot));
    this.#slots = slots;
    this.#nodes = nodes;
    return changed;
  }

  /** Takes a `MOVED`: `slot` is `node`'s now. Returns whether the map changed. */
  move(slot: number, node: Address): boolean {
    if (this.#slots === null) return false;
    const name = addressText(node);
    if (this.nodeFor(slot) === name) return false;
    this.#addresses.set(name, node);
    let index = this.#nodes.indexOf(name);
    if (index < 0) index = this.#nodes.push(name) - 1;
    this.#slots[slot] = index;
    return true;
  }

  /** The address a `host:port` name stands for (the host may be an IPv6 address, with colons). */
  #parse(node: string): Address {
    const colon = node.lastIndexOf(":");
    return { hostname: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
  }
}
