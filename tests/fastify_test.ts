/**
 * Wisp attached to a real Fastify 5 app's server (`fastify.server`): one port for the app's pages
 * and Wisp's WebSockets (the tests every framework passes, in ./helpers/app_on_one_port.ts).
 * Fastify needs nothing to leave upgrades alone (its routes and hooks never see them), and a
 * `preClose` hook closing Wisp lets `fastify.close()` finish with WebSockets open.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import {
  type AppUnderTest,
  describeAppOnOnePort,
  type Member,
  memberOptions,
} from "./helpers/app_on_one_port.ts";
import { readText } from "./helpers/attached.ts";
import { CLOSE, closePayload, frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { attach, type AttachOptions } from "../mod.ts";

/** The app of ./helpers/app_on_one_port.ts on Fastify, as a user writes it; `seen` gets every URL its hooks see. */
async function startFastify(options: AttachOptions<Member>, seen: string[] = []): Promise<AppUnderTest> {
  const fastify = Fastify();
  const wisp = attach(fastify.server, options);
  // fastify.close() waits for every connection of its server, Wisp's WebSockets too.
  fastify.addHook("preClose", () => wisp.close());
  fastify.addHook("onRequest", (request, _reply, done) => {
    seen.push(request.url);
    done();
  });
  fastify.get("/", (_request, reply) => reply.type("text/plain").send("welcome"));
  fastify.get<{ Params: { id: string } }>(
    "/users/:id",
    (request, reply) => reply.send({ id: request.params.id }),
  );
  fastify.post<{ Params: { room: string }; Body: { text: string } }>(
    "/rooms/:room/messages",
    (request, reply) =>
      reply.send({ delivered: wisp.publish(request.params.room, String(request.body.text)) }),
  );
  await fastify.listen({ port: 0, host: "127.0.0.1" });
  return {
    port: (fastify.server.address() as AddressInfo).port,
    wisp,
    stop: () => fastify.close(),
  };
}

describeAppOnOnePort("Fastify", (options) => startFastify(options));

describe("Fastify with Wisp attached", () => {
  const seen: string[] = [];
  let app: AppUnderTest | null = null;
  after(() => app?.stop());

  it("needs nothing to leave upgrades to Wisp: its hooks see only the plain requests", async () => {
    app ??= await startFastify(memberOptions(), seen);
    const socket = await RawClient.open(app.port, "/ws?room=x");
    try {
      socket.write(frame(TEXT, "hi"));
      assert.equal(await readText(socket), "hi");
      await (await fetch(`http://127.0.0.1:${app.port}/`)).text();
      assert.deepEqual(seen, ["/"]);
    } finally {
      socket.destroy();
    }
  });

  it("fastify.close() closes Wisp's WebSockets with 1001 through the preClose hook, and finishes", async () => {
    app ??= await startFastify(memberOptions(), seen);
    const socket = await RawClient.open(app.port, "/ws");
    try {
      const closed = app.stop();
      assert.equal((await socket.readClose(3000)).code, 1001);
      socket.write(frame(CLOSE, closePayload(1001)));
      await closed;
      await socket.waitForEnd(3000);
      await assert.rejects(fetch(`http://127.0.0.1:${app.port}/`), "the app stopped listening");
    } finally {
      socket.destroy();
      app = null;
    }
  });
});
