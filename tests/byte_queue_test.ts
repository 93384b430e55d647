/**
 * The HTTP phase's unread bytes: a lone chunk is kept by reference, two are joined in a buffer of
 * the queue's own, and `footprint` (what the server's HTTP buffer budget is charged) counts the
 * whole buffer a kept view holds on to, with or without asking the chunk for its `buffer`.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ByteQueue } from "../src/byte_queue.ts";

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("ByteQueue", () => {
  it("keeps a lone chunk by reference and copies only to join two", () => {
    const queue = new ByteQueue();
    const first = bytes(1, 2, 3);
    queue.push(first);
    assert.equal(queue.bytes, first);
    assert.equal(queue.borrowing, true);
    queue.push(bytes(4, 5));
    assert.deepEqual([...queue.bytes], [1, 2, 3, 4, 5]);
    assert.equal(queue.borrowing, false);
    queue.consume(2);
    assert.deepEqual([...queue.bytes], [3, 4, 5]);
    queue.consume(3);
    assert.equal(queue.length, 0);
  });

  it("charges a kept view with the whole buffer it lies in", () => {
    const queue = new ByteQueue();
    queue.push(new Uint8Array(new ArrayBuffer(4096), 100, 50));
    assert.equal(queue.footprint, 4096);
    queue.consume(10);
    assert.equal(queue.footprint, 4096);
  });

  it("compact copies a few bytes out of a large buffer, and leaves a view that uses most of its buffer", () => {
    const queue = new ByteQueue();
    const buffer = new Uint8Array(64 * 1024);
    buffer[1000] = 7;
    queue.push(buffer.subarray(1000, 1010));
    queue.compact();
    assert.equal(queue.borrowing, false);
    assert.deepEqual([...queue.bytes], [7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.ok(queue.footprint <= 1024, `footprint ${queue.footprint}`);
    buffer[1000] = 8; // the read buffer is free to be reused
    assert.equal(queue.bytes[0], 7);

    const whole = new Uint8Array(3000);
    queue.clear();
    queue.push(whole.subarray(1000));
    queue.compact();
    assert.equal(queue.bytes.buffer, whole.buffer, "2,000 of 3,000 bytes: kept as a view");
  });

  it("with ownBuffers, charges a chunk its length, and a consumed view still its whole buffer", () => {
    const queue = new ByteQueue(true);
    queue.push(new Uint8Array(150));
    assert.equal(queue.footprint, 150);
    queue.consume(100); // the view now starts at 100 of the same 150-byte buffer
    assert.equal(queue.footprint, 150);
    queue.consume(50);
    assert.equal(queue.footprint, 0);
  });

  it("with ownBuffers, takes the adapter's word and never asks a chunk for its buffer", () => {
    const queue = new ByteQueue(true);
    const chunk = new Uint8Array(new ArrayBuffer(4096), 0, 150);
    Object.defineProperty(chunk, "buffer", {
      get() {
        throw new Error("asked for its buffer");
      },
    });
    queue.push(chunk);
    assert.equal(queue.footprint, 150); // without the flag: 4096, or the getter's error
  });

  it("charges its own buffer once chunks were joined", () => {
    const queue = new ByteQueue(true);
    queue.push(new Uint8Array(10));
    queue.push(new Uint8Array(10));
    assert.equal(queue.footprint, 1024); // the joining buffer's smallest size
  });
});
