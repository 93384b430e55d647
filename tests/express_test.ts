/**
 * Wisp attached to a real Express 5 app's server: one port for the app's pages and Wisp's
 * WebSockets (the tests every framework passes, in ./helpers/app_on_one_port.ts), and Express's
 * middleware never seeing the upgrades Wisp takes.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server as HttpServer } from "node:http";
import express from "express";
import { type AppUnderTest, describeAppOnOnePort, memberOptions } from "./helpers/app_on_one_port.ts";
import { closeHttpServer, readText } from "./helpers/attached.ts";
import { frame, RawClient, TEXT } from "./helpers/raw_client.ts";
import { attach, type AttachOptions } from "../mod.ts";
import type { Member } from "./helpers/app_on_one_port.ts";

/** The app of ./helpers/app_on_one_port.ts on Express, as a user writes it; `seen` gets every URL its middleware sees. */
async function startExpress(options: AttachOptions<Member>, seen: string[] = []): Promise<AppUnderTest> {
  const app = express();
  app.use((request, _response, next) => {
    seen.push(request.url);
    next();
  });
  app.get("/", (_request, response) => void response.type("text").send("welcome"));
  app.get("/users/:id", (request, response) => void response.json({ id: request.params.id }));
  app.post("/rooms/:room/messages", express.json(), (request, response) => {
    response.json({ delivered: wisp.publish(request.params.room, String(request.body.text)) });
  });
  const server = await new Promise<HttpServer>((resolve) => {
    const listening: HttpServer = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  const wisp = attach(server, options);
  return {
    port: (server.address() as AddressInfo).port,
    wisp,
    async stop() {
      await wisp.close();
      await closeHttpServer(server);
    },
  };
}

describeAppOnOnePort("Express", (options) => startExpress(options));

describe("Express with Wisp attached", () => {
  const seen: string[] = [];
  let app: AppUnderTest | null = null;
  after(() => app?.stop());

  it("leaves Wisp's upgrades out of Express's middleware, which sees every plain request", async () => {
    app = await startExpress(memberOptions(), seen);
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
});
