/**
 * Events for operators: what goes wrong outside any socket's handlers (a failing `fetch` or
 * `upgrade` hook, the backplane), and refused handshakes when asked for, as objects for the
 * `onEvent` option and as one greppable line each (which the command line prints for its
 * supervisor's events too).
 * @module
 */

/** What an event is about. */
export type ServerEventKind =
  /** The `fetch` or `upgrade` hook (or a response body it returned) threw or rejected. */
  | "handler"
  /** A WebSocket handler threw and there is no `error` handler, or the `error` handler threw. */
  | "websocket"
  /** The backplane connected, lost its connection, or met an error. */
  | "backplane"
  /** Wisp answered a request in its HTTP phase with an error status (only with `reportRefusals`). */
  | "refused"
  /** The command line's supervisor started its workers, or one exited and is restarted. */
  | "worker"
  /** Accepting a connection failed (out of file descriptors, say); the listener goes on. */
  | "accept";

/** Something an operator may want to know, as the `onEvent` option receives it. */
export interface ServerEvent {
  /** `"error"` (something failed), `"warn"` (something degraded) or `"info"`. */
  level: "error" | "warn" | "info";
  /** What the event is about. */
  kind: ServerEventKind;
  /** What happened, in one sentence. */
  message: string;
  /** The status answered (`"refused"` events). */
  status?: number;
  /** The client's address, when a client was involved. */
  remoteAddress?: string;
  /** The value that was thrown, when something threw (for its stack). */
  error?: unknown;
}

/**
 * The event as one line, its fields always in the same order so that it can be grepped and
 * parsed: `wisp: error kind=handler address=127.0.0.1 message="the fetch hook failed: Error: boom"`
 * (the message JSON-quoted, so that it never spans lines).
 */
export function formatEvent(event: ServerEvent): string {
  const status = event.status === undefined ? "" : ` status=${event.status}`;
  const address = event.remoteAddress === undefined ? "" : ` address=${event.remoteAddress}`;
  return `wisp: ${event.level} kind=${event.kind}${status}${address} message=${
    JSON.stringify(event.message)
  }`;
}

/** The default `onEvent`: the event's line on stderr. */
export function printEvent(event: ServerEvent): void {
  console.error(formatEvent(event));
}

/**
 * The event for a hook or handler that threw `error`: `what` says which one failed, and
 * `remoteAddress` whose request or socket it was serving.
 */
export function failureEvent(
  kind: "handler" | "websocket",
  what: string,
  error: unknown,
  remoteAddress?: string,
): ServerEvent {
  const event: ServerEvent = { level: "error", kind, message: `${what}: ${describeError(error)}`, error };
  if (remoteAddress !== undefined) event.remoteAddress = remoteAddress;
  return event;
}

/** Milliseconds between two `accept` events: a listener out of descriptors fails on every try. */
const ACCEPT_REPORT_INTERVAL = 10_000;

/**
 * What a listener calls when accepting a connection failed: the first failure goes to `report`
 * at once, later ones at most every 10 s, counted, so that a process out of descriptors logs a
 * line every few seconds rather than twenty a second.
 */
export function acceptFailureReporter(report: (event: ServerEvent) => void): (error: unknown) => void {
  let reportedAt = -Infinity;
  let unreported = 0;
  return (error) => {
    const now = performance.now();
    if (now - reportedAt < ACCEPT_REPORT_INTERVAL) {
      unreported++;
      return;
    }
    const also = unreported === 0 ? "" : ` (and ${unreported} more since the last report)`;
    const outOfFiles = (error as { code?: unknown }).code === "EMFILE" ||
      (error as { code?: unknown }).code === "ENFILE";
    const advice = outOfFiles
      ? "the process has no file descriptor left: raise its open-file limit (ulimit -n)"
      : "the listener goes on accepting";
    report({
      level: "error",
      kind: "accept",
      message: `accepting a connection failed${also}: ${describeError(error)}; ${advice}`,
      error,
    });
    reportedAt = now;
    unreported = 0;
  };
}

/** A thrown value as text, whatever it is (`String` itself throws for some objects). */
function describeError(error: unknown): string {
  try {
    return String(error);
  } catch {
    return `a thrown ${typeof error}`;
  }
}
