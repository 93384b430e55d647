/**
 * The send queue: frames sent in one turn of the event loop reach the transport in one write,
 * shared (published) frames are passed on by reference, and nothing is reordered.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SendQueue } from "../src/send_queue.ts";
import { encodeFrame, Opcode } from "../src/frame.ts";
import { NullTransport } from "./helpers/null_transport.ts";
import { concat } from "./helpers/raw_client.ts";

/** A transport that records what it is asked to write. */
class RecordingTransport extends NullTransport {
  readonly writes: Uint8Array[] = [];
  /** Whether `write` says it kept the bytes (as a transport with a backlog does). */
  constructor(readonly keeps = false) {
    super();
  }
  override write(bytes: Uint8Array): boolean {
    this.writes.push(keeps(this.keeps, bytes));
    return this.keeps;
  }
}

/** What the test may inspect later: the bytes themselves when kept, a copy when written at once. */
const keeps = (kept: boolean, bytes: Uint8Array) => kept ? bytes : bytes.slice();

const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
const text = (value: string) => new TextEncoder().encode(value);

describe("SendQueue", () => {
  it("writes every frame of a turn in one write, in order", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    const values = ["one", "two", "x".repeat(3000), "four"];
    const frames = values.map((value) => encodeFrame(Opcode.Text, text(value)));
    for (const value of values) queue.frame(Opcode.Text, text(value));
    assert.equal(queue.bytes, frames.reduce((sum, frame) => sum + frame.length, 0));
    assert.equal(transport.writes.length, 0, "nothing is written before the turn ends");
    await turn();
    assert.equal(transport.writes.length, 1);
    assert.deepEqual(transport.writes[0], concat(...frames));
    assert.equal(queue.bytes, 0);
  });

  it("copies the payload at once, so the caller may reuse its buffer", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    const payload = text("before");
    queue.frame(Opcode.Binary, payload);
    payload.fill(0);
    await turn();
    assert.deepEqual(transport.writes[0], encodeFrame(Opcode.Binary, text("before")));
  });

  it("keeps a shared frame in its place and joins small turns into one write", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    const shared = encodeFrame(Opcode.Text, text("published"));
    queue.frame(Opcode.Text, text("a"));
    queue.shared(shared);
    queue.frame(Opcode.Text, text("b"));
    await turn();
    assert.equal(transport.writes.length, 1);
    assert.deepEqual(
      transport.writes[0],
      concat(encodeFrame(Opcode.Text, text("a")), shared, encodeFrame(Opcode.Text, text("b"))),
    );
  });

  it("passes a shared frame on by reference when it is all there is", async () => {
    const transport = new RecordingTransport(true);
    const queue = new SendQueue(transport);
    const shared = encodeFrame(Opcode.Binary, new Uint8Array(100));
    queue.shared(shared);
    await turn();
    assert.equal(transport.writes.length, 1);
    assert.equal(transport.writes[0], shared, "the same object, not a copy");
  });

  it("writes a large turn piece by piece instead of copying it into one buffer", async () => {
    const transport = new RecordingTransport(true);
    const queue = new SendQueue(transport);
    const shared = encodeFrame(Opcode.Binary, new Uint8Array(100_000).fill(7));
    queue.frame(Opcode.Text, text("first"));
    queue.shared(shared);
    await turn();
    assert.equal(transport.writes.length, 2);
    assert.deepEqual(transport.writes[0], encodeFrame(Opcode.Text, text("first")));
    assert.equal(transport.writes[1], shared);
  });

  it("flushes every queue with data in the same turn", async () => {
    const transports = [new RecordingTransport(), new RecordingTransport(), new RecordingTransport()];
    const queues = transports.map((transport) => new SendQueue(transport));
    queues.forEach((queue, i) => queue.frame(Opcode.Text, text(`to ${i}`)));
    queues[0].frame(Opcode.Text, text("again"));
    await turn();
    assert.deepEqual(transports.map((transport) => transport.writes.length), [1, 1, 1]);
    assert.deepEqual(
      transports[0].writes[0],
      concat(encodeFrame(Opcode.Text, text("to 0")), encodeFrame(Opcode.Text, text("again"))),
    );
  });

  it("drops what is queued when cleared", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    queue.frame(Opcode.Text, text("lost"));
    queue.clear();
    await turn();
    assert.equal(transport.writes.length, 0);
    assert.equal(queue.bytes, 0);
  });

  it("reuses a small buffer the transport wrote at once, and lets it go when trimmed", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    const buffers: ArrayBufferLike[] = [];
    const original = transport.write.bind(transport);
    transport.write = (bytes) => {
      buffers.push(bytes.buffer);
      return original(bytes);
    };
    for (const value of ["one", "two"]) {
      queue.frame(Opcode.Text, text(value));
      await turn();
    }
    queue.trim();
    queue.frame(Opcode.Text, text("three"));
    await turn();
    assert.deepEqual(
      transport.writes,
      ["one", "two", "three"].map((value) => encodeFrame(Opcode.Text, text(value))),
    );
    assert.equal(buffers[1], buffers[0], "the second turn wrote from the first turn's buffer");
    assert.notEqual(buffers[2], buffers[1], "after trim a new buffer was made");
  });

  it("never reuses a buffer the transport kept", async () => {
    const transport = new RecordingTransport(true);
    const queue = new SendQueue(transport);
    for (const value of ["one", "two"]) {
      queue.frame(Opcode.Text, text(value));
      await turn();
    }
    assert.notEqual(transport.writes[1].buffer, transport.writes[0].buffer);
    assert.deepEqual(transport.writes[0], encodeFrame(Opcode.Text, text("one")), "still intact");
  });

  it("encodes text straight into the frame, at every length class and boundary", async () => {
    const transport = new RecordingTransport();
    const queue = new SendQueue(transport);
    const texts = [
      "",
      "a",
      "é".repeat(41), // 82 bytes: at most 123 fits a 2-byte header, so it is encoded in place
      "x".repeat(42), // 42 to 126 bytes: the header size is not known up front
      "€".repeat(42), // 126 bytes
      "y".repeat(125),
      "y".repeat(126),
      "😀".repeat(30), // surrogate pairs: 4 bytes per 2 code units
      "z".repeat(21_845) + "€", // up to 65,538 bytes: the length class is not known up front
      "\ud800 lone surrogate", // encoded as U+FFFD, as the encoder does
      "w".repeat(70_000), // longer than what is encoded in place
    ];
    for (const value of texts) queue.text(value);
    queue.frame(Opcode.Binary, text("after"));
    await turn();
    const expected = concat(
      ...texts.map((value) => encodeFrame(Opcode.Text, text(value))),
      encodeFrame(Opcode.Binary, text("after")),
    );
    assert.equal(transport.writes.length, 1);
    assert.deepEqual(transport.writes[0], expected);
    assert.equal(queue.bytes, 0);
  });

  it("counts only the bytes text really took", () => {
    const queue = new SendQueue(new RecordingTransport());
    queue.text("é".repeat(10));
    assert.equal(queue.bytes, 2 + 20);
    queue.clear();
  });

  /** A large binary payload whose bytes all equal `fill`. */
  const large = (fill: number) => new Uint8Array(64 * 1024).fill(fill);

  it("recycles a large buffer the transport wrote at once for the next large turn, of any queue", async () => {
    const first = new SendQueue(new RecordingTransport());
    first.frame(Opcode.Binary, large(1));
    await turn();
    const transport = new RecordingTransport();
    const second = new SendQueue(transport);
    const buffers: ArrayBufferLike[] = [];
    const original = transport.write.bind(transport);
    transport.write = (bytes) => (buffers.push(bytes.buffer), original(bytes));
    second.frame(Opcode.Binary, large(2));
    await turn();
    second.frame(Opcode.Binary, large(3));
    await turn();
    assert.equal(buffers[1], buffers[0], "the second large turn reused the first one's buffer");
    assert.deepEqual(transport.writes, [
      encodeFrame(Opcode.Binary, large(2)),
      encodeFrame(Opcode.Binary, large(3)),
    ]);
  });

  it("recycles a large buffer the transport kept only after reclaim, and never after clear", async () => {
    const transport = new RecordingTransport(true);
    const queue = new SendQueue(transport);
    queue.frame(Opcode.Binary, large(4));
    await turn();
    queue.frame(Opcode.Binary, large(5));
    await turn();
    assert.notEqual(
      transport.writes[1].buffer,
      transport.writes[0].buffer,
      "lent: not reused before reclaim",
    );
    assert.deepEqual(transport.writes[0], encodeFrame(Opcode.Binary, large(4)), "still intact");
    queue.reclaim();
    queue.frame(Opcode.Binary, large(6));
    await turn();
    assert.equal(transport.writes[2].buffer, transport.writes[1].buffer, "reused once reclaimed");
    queue.clear(); // the transport may still hold the third turn's buffer
    queue.reclaim();
    queue.frame(Opcode.Binary, large(7));
    await turn();
    assert.notEqual(transport.writes[3].buffer, transport.writes[2].buffer, "cleared: never recycled");
    assert.deepEqual(transport.writes[2], encodeFrame(Opcode.Binary, large(6)), "still intact");
  });
});
