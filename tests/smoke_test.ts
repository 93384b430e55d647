import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { closePayload, frame, RawClient } from "./helpers/raw_client.ts";
import { echoServer } from "./helpers/server.ts";
import type { Server } from "../mod.ts";

describe("smoke", () => {
  let server: Server;
  before(() => {
    server = echoServer();
  });
  after(() => server.close());

  it("echoes a text frame and completes a client-initiated close", async () => {
    const client = await RawClient.open(server.port);
    client.write(frame(0x1, "hi"));
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, 0x1);
    assert.equal(new TextDecoder().decode(echoed.payload), "hi");
    client.write(frame(0x8, closePayload(1000, "done")));
    const close = await client.readClose();
    assert.equal(close.code, 1000);
    await client.waitForEnd();
  });

  it("fails an unmasked frame with 1002 and closes TCP", async () => {
    const client = await RawClient.open(server.port);
    client.write(frame(0x1, "hi", { mask: false }));
    const close = await client.readClose();
    assert.equal(close.code, 1002);
    await client.waitForEnd();
  });
});
