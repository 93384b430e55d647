/**
 * The token bucket behind `maxMessagesPerSecond`, on a fake clock: full at first, refilled at
 * `rate` tokens a second, never past `capacity`, and a failed take loses no part of a token.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TokenBucket } from "../src/token_bucket.ts";

/** A clock that moves only when told, from an arbitrary start. */
class FakeClock {
  ms = 12_345;
  readonly now = (): number => this.ms;
}

/** Takes tokens until one is refused; returns how many were taken. */
function drain(bucket: TokenBucket): number {
  let taken = 0;
  while (bucket.take()) {
    taken++;
    assert.ok(taken <= 1000, "the bucket never runs dry");
  }
  return taken;
}

describe("token bucket", () => {
  it("starts full: capacity tokens at once, then none", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    assert.equal(drain(bucket), 5);
    assert.equal(bucket.take(), false, "a second refusal at the same instant");
  });

  it("gives one token 1000 / rate ms after the last one, not before", () => {
    for (const [rate, interval] of [[4, 250], [10, 100], [1000, 1]]) {
      const early = new FakeClock();
      const notYet = new TokenBucket(rate, 1, early.now);
      assert.equal(drain(notYet), 1);
      early.ms += interval * 0.999;
      assert.equal(notYet.take(), false, `${rate}/s: a token ${interval * 0.999} ms later`);

      const onTime = new FakeClock();
      const refilled = new TokenBucket(rate, 1, onTime.now);
      assert.equal(drain(refilled), 1);
      onTime.ms += interval;
      assert.equal(drain(refilled), 1, `${rate}/s: tokens ${interval} ms later`);
    }
  });

  it("keeps the part of a token a refused take found", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 1, clock.now);
    assert.equal(drain(bucket), 1);
    clock.ms += 50;
    assert.equal(bucket.take(), false, "half a token");
    clock.ms += 50;
    assert.equal(bucket.take(), true, "the other half came");
  });

  it("holds at most capacity tokens however long it waits", () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    assert.equal(drain(bucket), 5);
    clock.ms += 3_600_000;
    assert.equal(drain(bucket), 5);
  });

  it("lets a steady sender through at the rate on average, plus the burst", () => {
    // 20 takes a second for 10 s against 10 tokens a second and 5 at once: the 5, then one in two.
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    let taken = 0;
    for (let i = 0; i <= 200; i++) {
      if (bucket.take()) taken++;
      clock.ms += 50;
    }
    assert.equal(taken, 5 + 10 * 10);
  });

  it("reads performance.now() by default", async () => {
    const bucket = new TokenBucket(1000, 1);
    assert.equal(drain(bucket), 1);
    const drained = performance.now();
    while (performance.now() - drained < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(bucket.take(), true, "a token 2 ms later at 1000/s");
  });
});
