/**
 * `attach`: Wisp's WebSockets on an `http.Server` (or `https.Server`) an app already has —
 * Express's, Fastify's, Koa's — sharing its port: the app keeps every other request, and Wisp
 * takes the WebSocket upgrades of its `path` from the server's `upgrade` event (or, for apps that
 * route upgrades themselves, from `handleUpgrade`, like `ws`'s `noServer` mode).
 * @module
 */

import { type HttpError, isUpgradeRequest, type RequestHead, requestHead } from "./handshake.ts";
import { requestFraming, upgradeBodyError } from "./http/body.ts";
import { targetPath } from "./http/request.ts";
import { resolveOptions, type ServeOptions } from "./options.ts";
import { adoptUpgradeSocket } from "./runtime/node.ts";
import { type Acceptor, type Server, startServer } from "./server.ts";

/** Options of {@linkcode attach}: those of `serve`, but listening and plain HTTP (the app's server does those). */
export type AttachOptions<T = undefined> = Omit<
  ServeOptions<T>,
  "port" | "hostname" | "reusePort" | "tls" | "fetch" | "metrics"
>;

/** The options of `serve` that an attached server does not have, refused by name. */
const NOT_ATTACHED: readonly Exclude<keyof ServeOptions, keyof AttachOptions>[] = [
  "port",
  "hostname",
  "reusePort",
  "tls",
  "fetch",
  "metrics",
];

/** The request an `http.Server`'s `upgrade` event brings (`IncomingMessage`), as Wisp reads it. */
export interface UpgradeRequestMessage {
  /** The request method. */
  readonly method?: string;
  /** The request target, e.g. `/chat?room=1`. */
  readonly url?: string;
  /** The minor version of HTTP/1.x. */
  readonly httpVersionMinor: number;
  /** The header fields as they came: names and values alternating. */
  readonly rawHeaders: readonly string[];
}

/** A listener of an `http.Server`'s `upgrade` event. */
export type UpgradeListener = (request: UpgradeRequestMessage, socket: object, head: Uint8Array) => void;

/** The part of a `node:http` (or `node:https`) server that {@linkcode attach} uses. */
export interface HttpServerLike {
  /** Adds an `upgrade` listener. */
  on(event: "upgrade", listener: UpgradeListener): unknown;
  /** Removes it. */
  off(event: "upgrade", listener: UpgradeListener): unknown;
  /** The `upgrade` listeners, in the order they are called. */
  listeners(event: "upgrade"): readonly unknown[];
  /** Where it listens (null before it does). */
  address(): { port: number; address: string } | string | null;
}

/** A server attached to an app's `http.Server`, as {@linkcode attach} returns it. */
export interface AttachedServer<T = undefined> extends Server<T> {
  /**
   * Takes one upgrade request over, from an `upgrade` listener of the app's own (as `ws`'s
   * `handleUpgrade`): `socket` is the `net.Socket` (or `tls.TLSSocket`) and `head` the bytes the
   * event brought. Every guard applies as to `serve`'s upgrades; a refused request gets its
   * status and reason on the socket, which is then closed.
   */
  handleUpgrade(request: UpgradeRequestMessage, socket: object, head: Uint8Array): void;
}

/**
 * Serves WebSockets on `httpServer`, an `http.Server` or `https.Server` the app made, sharing its
 * port; with `null`, on the upgrades the app hands to `handleUpgrade` itself (its `port` is then 0).
 * With a `path`, only upgrade requests for it are taken, and every other upgrade is left to the
 * server's other `upgrade` listeners; without one, every WebSocket upgrade request. When all the
 * server's `upgrade` listeners are Wisp's, what none takes is answered (404 for a WebSocket upgrade,
 * 501 for another protocol), as Node no longer hands such requests to the app's routes. The server's
 * other requests, its keep-alive connections and its listening are the app's: `close()` closes
 * Wisp's WebSockets with 1001 and stops taking upgrades, and the server goes on serving (close Wisp
 * before the server, whose `close()` waits for them). Works on Node (20+) and on the `node:http` of
 * Deno and Bun (tested: Deno 2.9.6, Bun 1.4.5; older Bun releases, 1.2.21 and 1.3.10 among
 * them, wrote nothing to upgrade sockets: oven-sh/bun#25156).
 * Throws a `TypeError` naming an option of listening or plain HTTP (`port`, `hostname`,
 * `reusePort`, `tls`, `fetch`, `metrics`), and a `TypeError`/`RangeError` naming a bad option, as
 * `serve` does.
 *
 * @example Express and Wisp on one port
 * ```ts ignore
 * import express from "express";
 * import { attach } from "jsr:@wisp/wisp";
 *
 * const app = express();
 * app.get("/", (_req, res) => res.send("hello"));
 * const wisp = attach(app.listen(3000), {
 *   path: "/ws",
 *   websocket: { message: (ws, data) => void ws.send(data) },
 * });
 * ```
 */
export function attach<T = undefined>(
  httpServer: HttpServerLike | null,
  options: AttachOptions<T> = {},
): AttachedServer<T> {
  for (const name of NOT_ATTACHED) {
    if (typeof options === "object" && options !== null && Object.hasOwn(options, name)) {
      throw new TypeError(
        `option "${name}" is not one of attach()'s: the app's server listens and answers HTTP`,
      );
    }
  }
  const resolved = resolveOptions<T>(options);
  let acceptor: Acceptor | null = null;
  const take = (socket: object, head: Uint8Array, parsed: RequestHead | HttpError) => {
    taken.add(socket);
    const transport = adoptUpgradeSocket(socket as Parameters<typeof adoptUpgradeSocket>[0]);
    // A plain view: handlers never see Node's Buffer, whose slice() would share the bytes.
    const early = new Uint8Array(head.buffer, head.byteOffset, head.byteLength);
    acceptor!.takeUpgrade(transport, parsed, early, (socket as { encrypted?: boolean }).encrypted === true);
  };
  const readHead = (request: UpgradeRequestMessage) => upgradeHead(request, resolved.maxBodySize);
  const handleUpgrade = (request: UpgradeRequestMessage, socket: object, head: Uint8Array) =>
    take(socket, head, readHead(request));
  const listener: UpgradeListener = (request, socket, head) => {
    if (taken.has(socket)) return; // another attachment's
    const parsed = readHead(request);
    const websocket = "status" in parsed || isUpgradeRequest(parsed.headers);
    if (websocket && (resolved.path === null || targetPath(request.url ?? "/") === resolved.path)) {
      return take(socket, head, parsed);
    }
    // Left to the server's other listeners; when there are none but Wisp's, the last one answers
    // (else the socket would hang: Node gives every upgrade to the listeners once there is one).
    const all = httpServer!.listeners("upgrade");
    if (
      all[all.length - 1] !== listener ||
      !all.every((other) => typeof other === "function" && wispListeners.has(other))
    ) return;
    take(socket, head, websocket ? parsed : OTHER_PROTOCOL); // off every path: checkUpgrade's 404
  };
  wispListeners.add(listener);
  httpServer?.on("upgrade", listener);
  const address = () => {
    const bound = httpServer?.address();
    return typeof bound === "object" && bound !== null ? bound : { port: 0, address: "" };
  };
  const server = startServer(resolved, (given) => {
    acceptor = given;
    return {
      get port() {
        return address().port;
      },
      get hostname() {
        return address().address;
      },
      // TLS servers (node:tls's, which node:https's extend) have ALPN protocols on every runtime;
      // Bun's have no setSecureContext.
      secure: httpServer !== null && "ALPNProtocols" in httpServer,
      close: () => void httpServer?.off("upgrade", listener),
    };
  });
  return Object.assign(server, { handleUpgrade });
}

/** The `upgrade` listeners that {@linkcode attach} added, on any server. */
const wispListeners = new WeakSet<object>();
/** The sockets that an attached server took, so that another one attached to the same server leaves them. */
const taken = new WeakSet<object>();

/** The answer to an upgrade to another protocol that no listener of the server takes. */
const OTHER_PROTOCOL: HttpError = { status: 501, message: "this server upgrades only to WebSocket" };

/**
 * The head of an upgrade request another server has read. One with a body is refused (400), as
 * `serve` refuses it: its bytes would be read as frames.
 */
function upgradeHead(request: UpgradeRequestMessage, maxBodySize: number): RequestHead | HttpError {
  const head = requestHead(
    request.method ?? "GET",
    request.url ?? "/",
    request.httpVersionMinor,
    request.rawHeaders,
  );
  if ("status" in head || !isUpgradeRequest(head.headers)) return head;
  return upgradeBodyError(requestFraming(head, maxBodySize)) ?? head;
}
