/**
 * The protocol core without a transport: bytes in through `receive`, decisions out to a recording
 * sink. The closing handshake with its records, failures, the owed pong and the backlog rule.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ReadyState } from "../src/api.ts";
import { Counters } from "../src/metrics.ts";
import { resolveOptions } from "../src/options.ts";
import { Protocol, type ProtocolSink } from "../src/protocol.ts";
import { BACKLOG_THRESHOLD } from "../src/runtime/types.ts";
import { CLOSE, closePayload, frame, PING, PONG, TEXT } from "./helpers/raw_client.ts";

/** A sink that records what the protocol decides; `backlog` is set by the test. */
class RecordingSink implements ProtocolSink {
  backlog = 0;
  readonly sent: [number, string][] = [];
  readonly events: string[] = [];
  control(opcode: number, payload: Uint8Array): boolean {
    this.sent.push([
      opcode,
      opcode === CLOSE ? `${(payload[0] << 8) | payload[1]}` : new TextDecoder().decode(payload),
    ]);
    return true;
  }
  message(data: string | Uint8Array): void {
    this.events.push(`message ${data}`);
  }
  heard(opcode: number, payload: Uint8Array): void {
    this.events.push(`${opcode === PING ? "ping" : "pong"} ${new TextDecoder().decode(payload)}`);
  }
  finished(code: number, reason: string): void {
    this.events.push(`finished ${code} ${reason}`);
  }
}

function protocol(sink = new RecordingSink()) {
  const core = new Protocol(sink, resolveOptions({}), new Counters(), null, 0);
  return { core, sink };
}

describe("protocol core", () => {
  it("echoes a close frame's code, records both frames and finishes", () => {
    const { core, sink } = protocol();
    core.receive(frame(TEXT, "hi"));
    core.receive(frame(CLOSE, closePayload(4001, "bye")));
    assert.deepEqual(sink.events, ["message hi", "finished 4001 bye"]);
    assert.deepEqual(sink.sent, [[CLOSE, "4001"]]);
    assert.deepEqual(core.closeReceived, { code: 4001, reason: "bye" });
    assert.equal(core.closeSent?.code, 4001);
    assert.equal(core.state, ReadyState.CLOSED);
    assert.equal(core.reading, false);
  });

  it("after its own close, discards messages and finishes on the peer's close frame", () => {
    const { core, sink } = protocol();
    assert.equal(core.close(1000, "done", closePayload(1000, "done")), true);
    assert.equal(core.state, ReadyState.CLOSING);
    core.receive(frame(TEXT, "late"));
    core.receive(frame(CLOSE, closePayload(1000)));
    assert.deepEqual(sink.events, ["finished 1000 "]);
    assert.deepEqual(sink.sent, [[CLOSE, "1000"]], "no second close frame");
  });

  it("fails a broken rule with its code and reason, and reads nothing after it", () => {
    const { core, sink } = protocol();
    core.receive(frame(TEXT, "x", { mask: false }));
    core.receive(frame(TEXT, "after"));
    assert.deepEqual(sink.events, ["finished 1002 unmasked client frame"]);
    assert.deepEqual(core.closeSent, { code: 1002, reason: "unmasked client frame" });
  });

  it("answers pings at once up to the backlog threshold, then only the latest once it drains", () => {
    const { core, sink } = protocol();
    sink.backlog = BACKLOG_THRESHOLD;
    core.receive(frame(PING, "a"));
    sink.backlog = BACKLOG_THRESHOLD + 1;
    core.receive(frame(PING, "b"));
    core.receive(frame(PING, "c"));
    assert.deepEqual(sink.sent, [[PONG, "a"]]);
    sink.backlog = 0;
    core.drained();
    core.drained();
    assert.deepEqual(sink.sent, [[PONG, "a"], [PONG, "c"]]);
    assert.deepEqual(sink.events, ["ping a", "ping b", "ping c"]);
  });

  it("sends the owed pong before its close frame", () => {
    const { core, sink } = protocol();
    sink.backlog = BACKLOG_THRESHOLD + 1;
    core.receive(frame(PING, "owed"));
    core.receive(frame(CLOSE, closePayload(1000)));
    assert.deepEqual(sink.sent, [[PONG, "owed"], [CLOSE, "1000"]]);
  });

  it("reports an abnormal end once, and none after a finished handshake", () => {
    const { core } = protocol();
    assert.equal(core.aborted(), true);
    assert.equal(core.aborted(), false);
    const other = protocol();
    other.core.receive(frame(CLOSE, closePayload(1000)));
    assert.equal(other.core.aborted(), false);
  });
});
