/**
 * The socket state every adapter shares, driven through a scripted raw socket: short writes and
 * writes held in flight queue in order, `pending` counts them, `end` sends FIN only once the queue
 * is written, a peer that ended first gets a full close, and `close` is reported once.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type RawSocket, SocketTransport } from "../src/runtime/socket_state.ts";
import { concat } from "./helpers/raw_client.ts";

/** A raw socket that takes at most `budget` bytes per write and records every call. */
class ScriptedSocket implements RawSocket {
  readonly remotePort = 4000;
  budget = Infinity;
  readonly written: Uint8Array[] = [];
  readonly calls: string[] = [];
  write(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.budget);
    this.written.push(bytes.slice(0, n));
    return n;
  }
  shutdown(): void {
    this.calls.push("shutdown");
  }
  close(): void {
    this.calls.push("close");
  }
  terminate(): void {
    this.calls.push("terminate");
  }
  pause(): void {
    this.calls.push("pause");
  }
  resume(): void {
    this.calls.push("resume");
  }
}

/** A transport over a scripted socket, with its events recorded. */
function transport() {
  const raw = new ScriptedSocket();
  const socket = new SocketTransport(raw, "127.0.0.1");
  const events: string[] = [];
  socket.events = {
    data: () => false,
    drain: () => void events.push("drain"),
    closed: () => void events.push("close"),
  };
  return { raw, socket, events };
}

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i + seed) & 0xff);

describe("SocketTransport", () => {
  it("writes at once when the socket takes everything, keeping no reference", () => {
    const { raw, socket } = transport();
    assert.equal(socket.write(bytes(10, 1)), false);
    assert.equal(socket.pending, 0);
    assert.deepEqual(raw.written, [bytes(10, 1)]);
  });

  it("queues what a short write left and what comes after, in order, until the socket is writable", () => {
    const { raw, socket, events } = transport();
    raw.budget = 4;
    const first = bytes(10, 1), second = bytes(6, 2);
    assert.equal(socket.write(first), true);
    assert.equal(socket.write(second), true, "a write behind a backlog is queued whole");
    assert.equal(socket.pending, 12);
    assert.equal(raw.written.length, 1, "no write reaches the socket until it is writable");
    socket.writable(0);
    assert.equal(socket.pending, 8);
    assert.deepEqual(events, []);
    raw.budget = Infinity;
    socket.writable(0);
    assert.equal(socket.pending, 0);
    assert.deepEqual(events, ["drain"]);
    assert.deepEqual(concat(...raw.written), concat(first, second));
  });

  it("counts bytes held in flight as pending until the socket reports them done", () => {
    const { raw, socket, events } = transport();
    raw.budget = 0; // an async socket: takes the bytes, done with none of them yet
    const first = bytes(10, 1), second = bytes(6, 2);
    assert.equal(socket.write(first), true);
    socket.write(second);
    assert.equal(socket.pending, 16);
    socket.writable(3); // a partial async write: the rest of `first` goes again
    assert.equal(socket.pending, 13);
    assert.deepEqual(raw.written.length, 2);
    socket.writable(7);
    socket.writable(6);
    assert.equal(socket.pending, 0);
    assert.deepEqual(events, ["drain"]);
  });

  it("end sends FIN only once the queue is written, and refuses writes after it", () => {
    const { raw, socket, events } = transport();
    raw.budget = 2;
    socket.write(bytes(5, 1));
    socket.end();
    assert.deepEqual(raw.calls, [], "no FIN while bytes wait");
    assert.equal(socket.write(bytes(1, 9)), false);
    raw.budget = Infinity;
    socket.writable(0);
    assert.deepEqual(raw.calls, ["shutdown"]);
    assert.deepEqual(events, [], "no drain for a socket that is ending");
    socket.peerEnded();
    assert.deepEqual(raw.calls, ["shutdown", "terminate"]);
    assert.deepEqual(events, ["close"]);
  });

  it("a peer that ended first: its reply is written, then the socket closes instead of half-closing", () => {
    const { raw, socket, events } = transport();
    raw.budget = 2;
    socket.write(bytes(5, 1));
    socket.end();
    socket.peerEnded();
    assert.deepEqual(events, [], "the queued reply still goes out");
    raw.budget = Infinity;
    socket.writable(0);
    assert.deepEqual(raw.calls, ["close"], "a graceful close, so the reply's tail is not dropped");
    assert.deepEqual(events, ["close"]);
  });

  it("a peer that ends while nothing is being ended closes the socket", () => {
    const { raw, socket, events } = transport();
    socket.peerEnded();
    assert.deepEqual(raw.calls, ["terminate"]);
    assert.deepEqual(events, ["close"]);
  });

  it("destroy drops the queue, reports close once, and ignores later calls", () => {
    const { raw, socket, events } = transport();
    raw.budget = 0;
    socket.write(bytes(5, 1));
    socket.destroy();
    assert.equal(socket.pending, 0);
    socket.closed();
    socket.destroy();
    socket.writable(5);
    socket.pause();
    socket.resume();
    socket.end();
    assert.equal(socket.write(bytes(1, 1)), false);
    assert.deepEqual(raw.calls, ["terminate"]);
    assert.deepEqual(events, ["close"]);
  });

  it("pause and resume reach the socket while it is open", () => {
    const { raw, socket } = transport();
    socket.pause();
    socket.resume();
    assert.deepEqual(raw.calls, ["pause", "resume"]);
  });
});
