/**
 * Admission to the HTTP phase: the table of connections still in it, per-address counts, and
 * the budget for the bytes they hold. When a table or the budget is full, the connections that
 * have waited longest for their request head make room, so sockets that connect and send nothing
 * (or trickle, or send half a head) cannot lock out clients that send a whole request at once.
 * @module
 */

import type { HttpError } from "./http/response.ts";

/** A connection in its HTTP phase, as admission sees it. */
export interface Candidate {
  /** The client's IP address. */
  readonly remoteAddress: string;
  /** Whether it is waiting for a request head, and so may be dropped to make room. */
  readonly evictable: boolean;
  /** Bytes it holds against the budget. */
  readonly heldBytes: number;
  /** Drops it to make room for a newcomer, answering with `error`. */
  evict(error: HttpError): void;
}

/** The limits admission enforces (see the `serve` options of the same names). */
export interface AdmissionLimits {
  /** Most connections in their HTTP phase at once. */
  maxPendingHandshakes: number;
  /** Most connections in their HTTP phase from one address. */
  maxPendingHandshakesPerIp: number;
  /** Most open connections from one address; 0 for no limit. */
  maxConnectionsPerIp: number;
  /** Most bytes held by connections in their HTTP phase, in all. */
  httpBufferBudget: number;
}

/** Admission control for one server. */
export class Admission<C extends Candidate> {
  /** Connections in their HTTP phase, in the order they began waiting for their current head. */
  readonly pending: Set<C> = new Set();
  readonly #limits: AdmissionLimits;
  readonly #pendingByIp = new Map<string, number>();
  /** Open connections by address (kept only with a `maxConnectionsPerIp`). */
  readonly #openByIp = new Map<string, number>();
  #held = 0;

  /** Admission under `limits`. */
  constructor(limits: AdmissionLimits) {
    this.#limits = limits;
  }

  /** Bytes held by connections in their HTTP phase. */
  get held(): number {
    return this.#held;
  }

  /**
   * Takes in a newly accepted connection, making room when a table is full. Returns null when it
   * is admitted, else the answer to refuse it with. Either way {@linkcode Admission.disconnected}
   * must follow once its socket closes.
   */
  admit(candidate: C): HttpError | null {
    const limits = this.#limits;
    const address = candidate.remoteAddress;
    if (limits.maxConnectionsPerIp > 0) {
      const open = this.#openByIp.get(address) ?? 0;
      this.#openByIp.set(address, open + 1);
      if (open >= limits.maxConnectionsPerIp) {
        return {
          status: 429,
          message:
            `too many connections from ${address} (maxConnectionsPerIp is ${limits.maxConnectionsPerIp})`,
        };
      }
    }
    if ((this.#pendingByIp.get(address) ?? 0) >= limits.maxPendingHandshakesPerIp) {
      const made = this.#makeRoom({
        status: 429,
        message:
          "too many connections from this address are still sending their request; this one waited longest",
      }, (other) => other.remoteAddress === address);
      if (!made) return { status: 429, message: "too many requests from this address are in progress" };
    }
    if (this.pending.size >= limits.maxPendingHandshakes) {
      const made = this.#makeRoom({
        status: 503,
        message:
          "the server is at its limit of connections still sending their request; this one waited longest",
      }, () => true);
      if (!made) return { status: 503, message: "too many requests are in progress; try again" };
    }
    this.pending.add(candidate);
    this.#pendingByIp.set(address, (this.#pendingByIp.get(address) ?? 0) + 1);
    return null;
  }

  /**
   * Evicts the connection that has waited longest for its head among those `eligible`; false
   * when there is none.
   */
  #makeRoom(error: HttpError, eligible: (candidate: C) => boolean): boolean {
    for (const candidate of this.pending) {
      if (candidate.evictable && eligible(candidate)) {
        candidate.evict(error);
        this.release(candidate); // evict usually releases it already; this makes sure
        return true;
      }
    }
    return false;
  }

  /** `candidate` waits for a new head (a kept-alive connection): it goes to the back of the order. */
  requeue(candidate: C): void {
    if (this.pending.delete(candidate)) this.pending.add(candidate);
  }

  /** `candidate` left its HTTP phase (answered for good, handed over, or gone). */
  release(candidate: C): void {
    if (!this.pending.delete(candidate)) return;
    decrement(this.#pendingByIp, candidate.remoteAddress);
  }

  /** A connection from `address`, admitted or not, has closed. */
  disconnected(address: string): void {
    if (this.#limits.maxConnectionsPerIp > 0) decrement(this.#openByIp, address);
  }

  /**
   * Changes the bytes held by `candidate` by `delta`. An increase that would pass
   * `httpBufferBudget` first drops connections still waiting for their head that hold bytes,
   * longest waiting first; returns false, and changes nothing, when that does not make room.
   */
  hold(delta: number, candidate: C): boolean {
    const budget = this.#limits.httpBufferBudget;
    if (delta > 0 && this.#held + delta > budget) {
      const holdsBytes = (other: C) => other !== candidate && other.heldBytes > 0;
      do {
        if (!this.#makeRoom(BUDGET_EVICTION, holdsBytes)) return false;
      } while (this.#held + delta > budget);
    }
    this.#held += delta;
    return true;
  }
}

/** The answer to a connection dropped to make room in the budget. */
const BUDGET_EVICTION: HttpError = {
  status: 503,
  message: "the server is out of memory for request data, and this request waited longest; try again",
};

function decrement(counts: Map<string, number>, key: string): void {
  const count = (counts.get(key) ?? 0) - 1;
  if (count > 0) counts.set(key, count);
  else counts.delete(key);
}
