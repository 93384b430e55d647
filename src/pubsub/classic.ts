/**
 * The Redis backplane's classic mode: Redis pub/sub (or sharded pub/sub, each channel on the node
 * of a cluster that owns its slot). Redis keeps nothing: a message published while a process is
 * cut off from Redis never reaches that process.
 * @module
 */

import type { Backplane, BackplaneEvent, BackplaneStats } from "./backplane.ts";
import { parseRedirect, SEEDS, Topology } from "./cluster.ts";
import { type Command, CommandRouter } from "./command_router.ts";
import { keySlot } from "./crc16.ts";
import { envelope, newOrigin, openEnvelope, payloadOf, sameBytes } from "./envelope.ts";
import { RedisLink } from "./redis_link.ts";
import type { RedisSettings } from "./redis_options.ts";
import { BackplaneCounters } from "./backplane_counters.ts";
import { encodeCommand, RespError, respText, type RespValue } from "./resp.ts";
import { textDecoder } from "../utf8.ts";

/** The most a reply from Redis may announce; more is taken for garbage (the connection is dropped). */
const REPLY_LIMITS = { maxBulkLength: 64 * 1024 * 1024, maxElements: 1 << 20, maxDepth: 4 };

const encoder = new TextEncoder();

/** A backplane over Redis pub/sub: one connection publishes, one subscribes (one of each per node when sharded). */
export class ClassicBackplane implements Backplane {
  readonly #settings: RedisSettings;
  readonly #origin = newOrigin();
  readonly #topology: Topology;
  readonly #router: CommandRouter;
  readonly #counters: BackplaneCounters;
  /** The topics this process has subscribers of, and the node each one's channel is subscribed on. */
  readonly #topics = new Map<string, string | null>();
  /** Subscribing connections, by node. */
  readonly #subscribers = new Map<string, RedisLink>();
  #reconnectsOfGone = 0;
  #deliver: ((topic: string, data: string | Uint8Array) => void) | null = null;
  #closed = false;

  /** A classic backplane with `settings` (checked). */
  constructor(settings: RedisSettings) {
    this.#settings = settings;
    this.#counters = new BackplaneCounters(settings.onEvent);
    this.#topology = new Topology(settings.seeds, settings.sharded);
    this.#router = new CommandRouter(this.#topology, settings, {
      role: "publisher",
      resend: false,
      preamble: [],
      limits: REPLY_LIMITS,
      servesWhileLoading: true,
      maxBytes: settings.maxBufferedBytes,
      events: this.#counters,
      mapChanged: () => this.#follow(),
    });
  }

  attach(
    deliver: (topic: string, data: string | Uint8Array) => void,
    report: (event: BackplaneEvent) => void,
  ): void {
    this.#deliver = deliver;
    this.#counters.attach(report);
    this.#router.start();
    this.#follow();
  }

  subscribe(topic: string): void {
    this.#topics.set(topic, null);
    this.#subscribeAt(topic);
  }

  unsubscribe(topic: string): void {
    const node = this.#topics.get(topic);
    this.#topics.delete(topic);
    if (node !== null && node !== undefined) {
      this.#subscribers.get(node)?.write(this.#command("UNSUBSCRIBE", topic));
    }
  }

  publish(topic: string, data: string | Uint8Array): void {
    if (this.#closed) return;
    const channel = this.#channel(topic);
    const { payload, binary } = payloadOf(data);
    const bytes = encodeCommand([
      this.#settings.sharded ? "SPUBLISH" : "PUBLISH",
      channel,
      envelope(payload, binary, this.#origin),
    ]);
    const counters = this.#counters;
    const command: Command = {
      slot: this.#settings.sharded ? keySlot(channel) : 0,
      size: bytes.length,
      encode: () => bytes,
      done: (reply) => {
        if (reply instanceof RespError) counters.refused("publisher", reply);
        else counters.published++;
      },
      dropped: (why) => {
        if (why === "limit") counters.dropped++;
      },
    };
    this.#router.send(command);
  }

  stats(): BackplaneStats {
    let connected = this.#router.connected;
    let reconnects = this.#router.reconnects + this.#reconnectsOfGone;
    for (const link of this.#subscribers.values()) {
      connected &&= link.connected;
      reconnects += link.reconnects;
    }
    const state = this.#closed
      ? "closed"
      : connected && this.#subscribers.size > 0
      ? "connected"
      : "connecting";
    return this.#counters.stats(state, reconnects, this.#router.bufferedBytes);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#router.settle();
    this.#router.close();
    for (const link of this.#subscribers.values()) link.shutdown();
    this.#subscribers.clear();
  }

  /** The Redis channel of `topic`: the prefix, then the topic's UTF-8. */
  #channel(topic: string): Uint8Array {
    const prefix = this.#settings.prefix;
    const name = encoder.encode(topic);
    const channel = new Uint8Array(prefix.length + name.length);
    channel.set(prefix);
    channel.set(name, prefix.length);
    return channel;
  }

  /** `(S)SUBSCRIBE` or `(S)UNSUBSCRIBE` (`verb`) of `topic`'s channel. */
  #command(verb: "SUBSCRIBE" | "UNSUBSCRIBE", topic: string): Uint8Array {
    return encodeCommand([this.#settings.sharded ? `S${verb}` : verb, this.#channel(topic)]);
  }

  /** The node whose subscriber takes `topic`'s channel, or null while the map is unknown. */
  #nodeOf(topic: string): string | null {
    return this.#settings.sharded ? this.#topology.nodeFor(keySlot(this.#channel(topic))) : SEEDS;
  }

  /** Subscribes to `topic`'s channel at the node that owns it now (when it has a subscriber there). */
  #subscribeAt(topic: string): void {
    const node = this.#nodeOf(topic);
    if (node === null) return;
    const link = this.#subscribers.get(node);
    if (link?.write(this.#command("SUBSCRIBE", topic))) this.#topics.set(topic, node);
  }

  /** The map is known or changed: a subscriber per node, each topic's channel at its node. */
  #follow(): void {
    if (this.#closed || !this.#topology.known) return;
    const nodes = new Set(this.#topology.nodes());
    for (const node of nodes) if (!this.#subscribers.has(node)) this.#openSubscriber(node);
    for (const [node, link] of this.#subscribers) {
      if (nodes.has(node)) continue;
      this.#reconnectsOfGone += link.reconnects;
      link.shutdown();
      this.#subscribers.delete(node);
    }
    for (const [topic, node] of this.#topics) {
      const owner = this.#nodeOf(topic);
      if (node === owner) continue;
      if (node !== null) this.#subscribers.get(node)?.write(this.#command("UNSUBSCRIBE", topic));
      this.#topics.set(topic, null);
      this.#subscribeAt(topic);
    }
  }

  /** Connects a subscriber to `node`. */
  #openSubscriber(node: string): void {
    const link = new RedisLink(this.#settings, {
      role: "subscriber",
      target: () => this.#topology.address(node),
      pushes: true,
      limits: REPLY_LIMITS,
      servesWhileLoading: true,
    }, {
      ready: () => this.#resubscribe(node, link),
      down: () => {
        for (const [topic, at] of this.#topics) if (at === node) this.#topics.set(topic, null);
      },
      push: (reply) => this.#receive(node, reply),
      report: (event) => this.#counters.report(event),
      failed: (why) => {
        this.#counters.countError(why);
        this.#router.refresh();
      },
    });
    this.#subscribers.set(node, link);
    void link.open();
  }

  /** A subscriber is connected: it subscribes to every topic of this process its node owns. */
  #resubscribe(node: string, link: RedisLink): void {
    const topics = [...this.#topics.keys()].filter((topic) => this.#nodeOf(topic) === node);
    for (const topic of topics) this.#topics.set(topic, node);
    // One sharded subscription per command: channels of one SSUBSCRIBE must share a cluster slot.
    if (this.#settings.sharded) {
      for (const topic of topics) link.write(this.#command("SUBSCRIBE", topic));
    } else if (topics.length > 0) {
      link.write(encodeCommand(["SUBSCRIBE", ...topics.map((topic) => this.#channel(topic))]));
    }
  }

  /** A message (or a reply) on the subscriber of `node`. */
  #receive(node: string, reply: RespValue): void {
    if (reply instanceof RespError) {
      const redirect = parseRedirect(reply);
      if (redirect !== null) return this.#router.moved(redirect.slot, redirect.node);
      return this.#counters.refused("subscriber", reply);
    }
    if (!Array.isArray(reply) || reply.length !== 3) return;
    const kind = respText(reply[0]);
    const channel = reply[1];
    if (!(channel instanceof Uint8Array)) return;
    const prefix = this.#settings.prefix;
    const topic = textDecoder.decode(channel.subarray(prefix.length));
    if (kind === "sunsubscribe" && this.#topics.get(topic) === node) {
      // Not asked for: the slot moved away from this node. Subscribe where the map says now (a
      // MOVED there corrects the map).
      this.#topics.set(topic, null);
      this.#router.refresh();
      return this.#subscribeAt(topic);
    }
    if (kind !== "message" && kind !== "smessage") return; // (s)subscribe confirmations and the like
    const message = reply[2];
    const opened = message instanceof Uint8Array && channel.length >= prefix.length
      ? openEnvelope(message, false)
      : null;
    if (opened === null) {
      return this.#counters.report({
        type: "error",
        message: "a message on a Wisp channel is not in Wisp's format",
      });
    }
    if (sameBytes(opened.origin, this.#origin)) return; // our own, delivered already
    if (!this.#topics.has(topic)) return; // unsubscribed meanwhile
    this.#counters.received++;
    this.#deliver!(topic, opened.data);
  }
}
