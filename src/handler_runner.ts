/**
 * Calling a server's WebSocket handlers: with fixed arguments (no rest array per message), a
 * failure (a throw, or a rejection of an async handler) caught, handed to the `error` handler (or
 * without one to the server's `onEvent`), and the socket closed with 1011. One runner per server.
 * @module
 */

import { Failure, failureCode, type FailureLimits, failureReason } from "./close.ts";
import { failureEvent, type ServerEvent } from "./events.ts";
import type { ServerWebSocket, WebSocketHandler } from "./server_websocket.ts";

/** Any handler, called with the socket and up to two more arguments. */
// deno-lint-ignore no-explicit-any
export type AnyHandler = (ws: any, a: any, b: any) => unknown;

/** The socket a handler call is for. */
export interface HandlerScope<T> {
  /** The socket handed to the handler. */
  readonly socket: ServerWebSocket<T>;
  /** Catches a rejection of an async handler for this socket (one function per socket, made once). */
  readonly rejected: (error: unknown) => void;
}

/** Calls the `websocket` handlers of one server, catching their failures. */
export class HandlerRunner<T> {
  /** The handlers (the resolved `websocket` option). */
  readonly handlers: WebSocketHandler<T>;
  readonly #limits: FailureLimits;
  readonly #report: (event: ServerEvent) => void;

  /** Runs `handlers`; failures nobody handles go to `report` (the server's `onEvent`). */
  constructor(handlers: WebSocketHandler<T>, limits: FailureLimits, report: (event: ServerEvent) => void) {
    this.handlers = handlers;
    this.#limits = limits;
    this.#report = report;
  }

  /**
   * Calls `fn` (a handler, or nothing) for `scope`'s socket with `a` and `b`. Returns the promise
   * an async handler returned (its rejection is caught through `scope.rejected`), else null.
   */
  call(
    fn: AnyHandler | undefined,
    scope: HandlerScope<T>,
    a?: unknown,
    b?: unknown,
  ): Promise<unknown> | null {
    if (fn === undefined) return null;
    try {
      const result = fn.call(this.handlers, scope.socket, a, b);
      if (result instanceof Promise) {
        result.catch(scope.rejected);
        return result;
      }
    } catch (error) {
      this.failed(scope.socket, error);
    }
    return null;
  }

  /** A handler for `socket` failed with `error`: tell the `error` handler (or `onEvent`), then close with 1011. */
  failed(socket: ServerWebSocket<T>, error: unknown): void {
    const onError = this.handlers.error;
    const errorHandlerFailed = (secondError: unknown) =>
      this.#reportFailure(socket, "the WebSocket error handler failed", secondError);
    try {
      if (onError === undefined) this.#reportFailure(socket, "a WebSocket handler failed", error);
      else {
        const result = onError.call(this.handlers, socket, error);
        // An async error handler that rejects is reported too, never an unhandled rejection.
        if (result instanceof Promise) result.catch(errorHandlerFailed);
      }
    } catch (secondError) {
      errorHandlerFailed(secondError);
    }
    socket.close(failureCode(Failure.HandlerFailed), failureReason(Failure.HandlerFailed, this.#limits));
  }

  #reportFailure(socket: ServerWebSocket<T>, what: string, error: unknown): void {
    this.#report(failureEvent("websocket", what, error, socket.remoteAddress));
  }
}
