/**
 * crossws on Wisp: an adapter following crossws's `defineWebSocketAdapter` contract (`peers`,
 * `publish`, `close`, the hooks `upgrade`, `open`, `message`, `close`, `error`, `drain`, `ping`,
 * `pong`, and the options `resolve`, `getNamespace`, `handleProtocols`, `sync`), used as
 * crossws's Bun adapter is: `websocket` for `serve`, and `handleUpgrade(request, info)` in
 * `fetch`. crossws's topics are Wisp topics (one per namespace and topic), so a publish is
 * encoded once for all its subscribers. Nothing is imported from `crossws`.
 *
 * @example A chat room
 * ```ts
 * import { serve } from "../../mod.ts"; // or "@wisp/wisp"
 * import wispAdapter from "./crossws.ts"; // or "@wisp/wisp/crossws"
 *
 * const ws = wispAdapter({
 *   hooks: {
 *     open(peer) {
 *       peer.subscribe("chat");
 *       peer.publish("chat", `${peer} joined`);
 *     },
 *     message(peer, message) {
 *       peer.publish("chat", message.text());
 *     },
 *   },
 * });
 * const server = serve({
 *   port: 0,
 *   websocket: ws.websocket,
 *   fetch: (request, info) =>
 *     request.headers.get("upgrade") === "websocket"
 *       ? ws.handleUpgrade(request, info)
 *       : new Response("the chat is at ws://…/"),
 * });
 * await server.close();
 * ```
 * @module
 */

import { describeValue } from "../describe_value.ts";
import { failureEvent, printEvent } from "../events.ts";
import { knownKeys, optionalFunction } from "../option_table.ts";
import type { Upgrader } from "../options.ts";
import type { WebSocketHandler } from "../server_websocket.ts";
import {
  type HookName,
  type Hooks,
  type Peer,
  type ResolveHooks,
  type SyncAdapter,
  type SyncDriver,
  type SyncMessage,
  WSError,
} from "./crossws_contract.ts";
import { decideUpgrade, HookCaller, type ProtocolHandler } from "./crossws_hooks.ts";
import { WispMessage } from "./crossws_message.ts";
import { type CrosswsSocketData, type PeerHost, toMessageData, topicKey, WispPeer } from "./crossws_peer.ts";

export type {
  HookName,
  Hooks,
  MaybePromise,
  Message,
  Peer,
  PeerWebSocket,
  ResolveHooks,
  SyncAdapter,
  SyncDriver,
  SyncMessage,
  UpgradeHookResult,
  WaitForDrainOptions,
} from "./crossws_contract.ts";
export { WSError } from "./crossws_contract.ts";
export type { ProtocolHandler } from "./crossws_hooks.ts";
export type { CrosswsSocketData } from "./crossws_peer.ts";

/** Which operation of a sync backplane failed. */
export interface SyncErrorContext {
  /** `subscribe` (starting), `publish` (relaying a local publish) or `delivery` (a remote one). */
  stage: "subscribe" | "publish" | "delivery";
}

/** Options of {@linkcode wispAdapter}, as crossws names them. Every one is optional. */
export interface WispAdapterOptions {
  /** The hooks. */
  hooks?: Hooks;
  /** Hooks of one connection, asked once with its upgrade request; they run after `hooks`. */
  resolve?: ResolveHooks;
  /** The pub/sub namespace of a request, unless the upgrade hook names one. Default: its path. */
  getNamespace?: (request: Request) => string;
  /**
   * Chooses the subprotocol from the client's offer (asked only when it offers some) unless the
   * upgrade hook chose one; nothing chosen leaves it to `serve`'s `protocols` option.
   */
  handleProtocols?: ProtocolHandler;
  /**
   * A crossws sync backplane (`crossws/sync`) relaying publishes between instances. A Wisp
   * `backplane` on the server does that too, for every Wisp topic: use one of them, not both.
   */
  sync?: SyncAdapter;
  /** Hears of a failure of the sync backplane. Default: a line on stderr. */
  onError?: (error: unknown, context: SyncErrorContext) => void;
}

/** The adapter: crossws's `AdapterInstance`, with what Wisp's `serve` needs. */
export interface WispAdapter {
  /** The open peers of this process, by namespace. */
  readonly peers: Map<string, Set<Peer>>;
  /**
   * Sends `data` to every subscriber of `topic` (in `namespace` only, when given) in this process,
   * through one of them, so that it is encoded once for that one and once for all the others
   * (and reaches other processes through a Wisp backplane); relays it with `sync`.
   */
  readonly publish: (
    topic: string,
    data: unknown,
    options?: { compress?: boolean; namespace?: string },
  ) => void;
  /** Starts closing every peer with `code` and `reason`, then closes the sync backplane. */
  readonly close: (code?: number, reason?: string) => Promise<void>;
  /** The sync backplane's driver, with the `sync` option. */
  readonly sync?: SyncDriver;
  /** The handlers of the adapter's sockets, for `serve`'s `websocket` option. */
  readonly websocket: WebSocketHandler<CrosswsSocketData>;
  /**
   * Asks the hooks about `request` (an upgrade request `fetch` got) and takes it over with
   * `info.upgrade`: resolves to nothing when it is taken over, to the hooks' `Response` when they
   * refuse, and to a 400 when it is no valid upgrade request. Rejects with what a hook threw.
   */
  readonly handleUpgrade: (
    request: Request,
    info: Upgrader<CrosswsSocketData>,
  ) => Promise<Response | undefined>;
}

const OPTION_NAMES = ["hooks", "resolve", "getNamespace", "handleProtocols", "sync", "onError"];
const HOOK_NAMES: readonly HookName[] = [
  "upgrade",
  "open",
  "message",
  "close",
  "error",
  "drain",
  "ping",
  "pong",
];
const NOT_AN_UPGRADE =
  "Not a valid WebSocket upgrade request: it needs GET over HTTP/1.1, Connection: Upgrade, " +
  "a Sec-WebSocket-Key of 16 bytes in base64 and Sec-WebSocket-Version: 13.\n";

/** The options, checked: a `TypeError` names the first that is wrong. */
function checkOptions(options: unknown) {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`wispAdapter() takes an options object, got ${describeValue(options)}`);
  }
  if ("idleTimeout" in options) {
    throw new TypeError(`wispAdapter() option "idleTimeout" is serve's: Wisp pings idle sockets itself`);
  }
  knownKeys(options, OPTION_NAMES, (name) => `wispAdapter() option "${name}"`);
  const { hooks = {}, resolve, getNamespace, handleProtocols, sync, onError } = options as WispAdapterOptions;
  if (typeof hooks !== "object" || hooks === null) {
    throw new TypeError(
      `wispAdapter() option "hooks" must be an object of hooks, got ${describeValue(hooks)}`,
    );
  }
  knownKeys(hooks, HOOK_NAMES, (name) => `hook "${name}"; the hooks are ${HOOK_NAMES.join(", ")}`);
  for (const name of HOOK_NAMES) optionalFunction(hooks[name], `hook "${name}"`);
  const label = (name: string) => `wispAdapter() option "${name}"`;
  return {
    hooks,
    resolve: optionalFunction<ResolveHooks>(resolve, label("resolve")),
    getNamespace: optionalFunction<(request: Request) => string>(getNamespace, label("getNamespace")),
    handleProtocols: optionalFunction<ProtocolHandler>(handleProtocols, label("handleProtocols")),
    sync: optionalFunction<SyncAdapter>(sync, label("sync")),
    onError: optionalFunction<NonNullable<WispAdapterOptions["onError"]>>(onError, label("onError")),
  };
}

/** Runs `step`, handing a throw or a rejection to `failed`. */
function attempt(step: () => unknown, failed: (error: unknown) => void): void {
  try {
    const result = step();
    if (result instanceof Promise) result.catch(failed);
  } catch (error) {
    failed(error);
  }
}

/** A payload as a sync backplane carries it: text, or bytes in a `Uint8Array`. */
function syncData(data: unknown): string | Uint8Array {
  const message = toMessageData(data);
  if (typeof message === "string") return message;
  return ArrayBuffer.isView(message)
    ? new Uint8Array(message.buffer, message.byteOffset, message.byteLength)
    : new Uint8Array(message);
}

/**
 * Makes a crossws adapter for Wisp. Throws a `TypeError` naming an option or hook that is wrong
 * (`idleTimeout` is `serve`'s option here).
 */
export function wispAdapter(options: WispAdapterOptions = {}): WispAdapter {
  const settings = checkOptions(options);
  const caller = new HookCaller(settings.hooks, settings.resolve);
  const peers = new Map<string, Set<WispPeer>>();

  const reportSync = (stage: SyncErrorContext["stage"]) => (error: unknown) => {
    if (settings.onError !== null) settings.onError(error, { stage });
    else printEvent({ ...failureEvent("handler", `the crossws sync ${stage}`, error), kind: "backplane" });
  };
  let sync: SyncDriver | undefined;
  if (settings.sync !== null) {
    const driver = settings.sync({ id: crypto.randomUUID() });
    const delivered = reportSync("delivery");
    const deliver = (message: SyncMessage) =>
      attempt(() => deliverLocally(message.topic, message.data, message.namespace), delivered);
    attempt(() => driver.subscribe(deliver), reportSync("subscribe"));
    sync = driver;
  }
  const published = reportSync("publish");

  /**
   * Sends `data` to this process's subscribers of `topic` in `namespace` (in every namespace
   * for `""`): through the first one found, which gets it by `send` and publishes it to the rest.
   */
  function deliverLocally(topic: string, data: unknown, namespace: string): void {
    const message = toMessageData(data);
    for (const name of namespace === "" ? peers.keys() : [namespace]) {
      const key = topicKey(name, topic);
      for (const peer of peers.get(name) ?? []) {
        if (!peer.websocket.isSubscribed(key)) continue;
        peer.websocket.send(message);
        peer.websocket.publish(key, message);
        break;
      }
    }
  }

  /** A failure of `peer`'s hooks (or of its ping) for the `error` hook; one nobody hears of goes to stderr. */
  const failed = (peer: WispPeer, error: unknown) => {
    const unheard = () =>
      printEvent(failureEvent("websocket", "a crossws hook failed", error, peer.remoteAddress));
    const report = (failure: unknown) =>
      printEvent(failureEvent("websocket", "the crossws error hook failed", failure, peer.remoteAddress));
    attempt(() => caller.call("error", peer.websocket.data.hooks, peer, new WSError(error), unheard), report);
  };
  const host: PeerHost = {
    failed,
    relay(namespace, topic, data) {
      const driver = sync;
      if (driver !== undefined) {
        attempt(() => driver.publish({ namespace, topic, data: syncData(data) }), published);
      }
    },
  };

  const websocket: WebSocketHandler<CrosswsSocketData> = {
    open(ws) {
      const data = ws.data;
      let namespacePeers = peers.get(data.namespace);
      if (namespacePeers === undefined) peers.set(data.namespace, namespacePeers = new Set());
      const peer = data.peer = new WispPeer(ws, namespacePeers, host);
      namespacePeers.add(peer);
      return caller.call("open", data.hooks, peer) as void;
    },
    message(ws, message) {
      const data = ws.data;
      return caller.call("message", data.hooks, data.peer, new WispMessage(message, data.peer!)) as void;
    },
    close(ws, code, reason) {
      const data = ws.data;
      const peer = data.peer!;
      peer.peers.delete(peer);
      // A namespace is any path a client asks for: one without peers is forgotten.
      if (peer.peers.size === 0 && peers.get(data.namespace) === peer.peers) peers.delete(data.namespace);
      return caller.call("close", data.hooks, peer, { code, reason }) as void;
    },
    drain: (ws) => caller.call("drain", ws.data.hooks, ws.data.peer) as void,
    ping: (ws, bytes) => caller.call("ping", ws.data.hooks, ws.data.peer, bytes) as void,
    pong: (ws, bytes) => caller.call("pong", ws.data.hooks, ws.data.peer, bytes) as void,
  };
  // Without an error hook, Wisp reports a failed hook to the server's onEvent itself.
  if (caller.has("error") || settings.resolve !== null) {
    websocket.error = (ws, error) => failed(ws.data.peer!, error);
  }

  return {
    peers,
    sync,
    websocket,
    publish(topic, data, publishOptions) {
      const namespace = publishOptions?.namespace || "";
      deliverLocally(topic, data, namespace);
      host.relay(namespace, topic, data);
    },
    async close(code, reason) {
      for (const namespacePeers of peers.values()) {
        for (const peer of namespacePeers) peer.close(code, reason);
      }
      await sync?.close?.();
    },
    async handleUpgrade(request, info) {
      if (typeof info?.upgrade !== "function") {
        throw new TypeError(
          "handleUpgrade(request, info): info must be the second argument of serve's fetch",
        );
      }
      const resolved = caller.resolveFor(request);
      const decision = await decideUpgrade(
        caller,
        resolved,
        request,
        settings.getNamespace,
        settings.handleProtocols,
      );
      if (decision instanceof Response) return decision;
      const data: CrosswsSocketData = {
        request,
        namespace: decision.namespace,
        context: decision.context,
        hooks: resolved,
        peer: null,
      };
      if (
        info.upgrade(request, { data, headers: decision.headers, protocol: decision.protocol, websocket })
      ) {
        return undefined;
      }
      return new Response(NOT_AN_UPGRADE, {
        status: 400,
        headers: { "Content-Type": "text/plain; charset=utf-8" },
      });
    },
  };
}

export default wispAdapter;
