/**
 * Calling crossws's hooks as its adapters do (the `hooks` option's first, then those `resolve`
 * gave for the connection), and the upgrade decision they make: refused with a `Response`, or
 * accepted into a namespace with a context, headers and a subprotocol.
 * @module
 */

import { offeredProtocols } from "../handshake.ts";
import type { HookName, Hooks, MaybePromise, ResolveHooks, UpgradeHookResult } from "./crossws_contract.ts";

/** A hook, called with one or two arguments. */
// deno-lint-ignore no-explicit-any
type AnyHook = (a: any, b?: any) => unknown;

/** The hooks `resolve` gave for one connection (a promise while it resolves), or none. */
export type ResolvedHooks = MaybePromise<Hooks | undefined> | undefined;

/** An upgrade request the hooks accepted. */
export interface AcceptedUpgrade {
  /** The pub/sub namespace. */
  namespace: string;
  /** The peer's context. */
  context: Record<string, unknown>;
  /** Extra headers for the 101, without `Sec-WebSocket-Protocol`. */
  headers: Headers | undefined;
  /** The subprotocol the hooks chose, if any. */
  protocol: string | undefined;
}

/** Chooses a subprotocol from the client's offer, as crossws's `handleProtocols` option does. */
export type ProtocolHandler = (
  protocols: Set<string>,
  request: Request,
) => MaybePromise<string | false | null | undefined>;

/** The adapter's hooks, and `resolve`'s per connection. */
export class HookCaller {
  readonly #hooks: Hooks;
  readonly #resolve: ResolveHooks | null;

  /** Calls `hooks` and, for each connection, those `resolve` gives for its request. */
  constructor(hooks: Hooks, resolve: ResolveHooks | null) {
    this.#hooks = hooks;
    this.#resolve = resolve;
  }

  /** Asks `resolve` for the hooks of `request`'s connection (a throw becomes a rejection). */
  resolveFor(request: Request): ResolvedHooks {
    if (this.#resolve === null) return undefined;
    try {
      return this.#resolve(request);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Whether the `hooks` option has hook `name`. */
  has(name: HookName): boolean {
    return this.#hooks[name] !== undefined;
  }

  /**
   * Calls hook `name` with `a` and `b`: the `hooks` option's, then (once `resolved` has
   * settled) the connection's own, whose answer wins when it gives one; `unheard` when neither
   * has the hook. Returns what they return: a promise whenever the connection has resolved hooks.
   */
  call(name: HookName, resolved: ResolvedHooks, a: unknown, b?: unknown, unheard?: () => void): unknown {
    const hooks = this.#hooks;
    const global = hooks[name] as AnyHook | undefined;
    const first = global === undefined ? undefined : global.call(hooks, a, b);
    if (resolved === undefined) {
      if (global === undefined) unheard?.();
      return first;
    }
    return Promise.all([first, resolved]).then(([firstAnswer, own]) => {
      const hook = own?.[name] as AnyHook | undefined;
      if (hook === undefined) {
        if (global === undefined) unheard?.();
        return firstAnswer;
      }
      return Promise.resolve(hook.call(own, a, b)).then((answer) => answer || firstAnswer);
    });
  }
}

/**
 * What the hooks decide about an upgrade request: a `Response` to refuse with (returned, or
 * thrown, or the `response` of what was thrown), or how to accept. The namespace is the hook's,
 * else `getNamespace`'s, else the request's path; the subprotocol the hook's `protocol`, else a
 * `Sec-WebSocket-Protocol` among its headers, else `handleProtocols`' pick from the client's offer.
 * Anything else thrown rejects.
 */
export async function decideUpgrade(
  caller: HookCaller,
  resolved: ResolvedHooks,
  request: Request,
  getNamespace: ((request: Request) => string) | null,
  handleProtocols: ProtocolHandler | null,
): Promise<Response | AcceptedUpgrade> {
  let namespace = getNamespace?.(request) ?? new URL(request.url).pathname;
  const context = (request as { context?: Record<string, unknown> }).context ?? {};
  let answer: UpgradeHookResult | Headers | Response | void;
  try {
    answer = await (caller.call("upgrade", resolved, request) as ReturnType<NonNullable<Hooks["upgrade"]>>);
  } catch (error) {
    const response = (error as { response?: unknown } | null | undefined)?.response ?? error;
    if (response instanceof Response) return response;
    throw error;
  }
  if (answer instanceof Response) return answer;
  let headers: Headers | undefined;
  let protocol: string | undefined;
  if (answer instanceof Headers) headers = new Headers(answer);
  else if (answer) {
    if (answer.namespace) namespace = answer.namespace;
    if (answer.context) Object.assign(context, answer.context);
    if (answer.headers !== undefined) headers = new Headers(answer.headers);
    protocol = answer.protocol || undefined;
  }
  // Wisp writes the subprotocol header itself, from the one it is told.
  const named = headers?.get("sec-websocket-protocol");
  headers?.delete("sec-websocket-protocol");
  protocol ??= named || undefined;
  if (protocol === undefined && handleProtocols !== null) {
    const offer = request.headers.get("sec-websocket-protocol");
    const offered = offeredProtocols(new Map(offer === null ? [] : [["sec-websocket-protocol", offer]])) ??
      [];
    if (offered.length > 0) protocol = (await handleProtocols(new Set(offered), request)) || undefined;
  }
  return { namespace, context, headers, protocol };
}
