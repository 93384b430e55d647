/**
 * What an Express or Fastify app with Wisp attached to its server must show on one port, as tests
 * that each framework's file runs against an app of its own making: the app's pages (a GET route,
 * a route parameter, its own 404), Wisp's echo with early frames, a publish from the app's JSON
 * POST to a topic's subscribers, close codes both ways, and `close()` leaving the app serving.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { CLOSE, closePayload, concat, frame, RawClient, TEXT, upgradeRequest } from "./raw_client.ts";
import { getOn, readText } from "./attached.ts";
import type { AttachedServer, AttachOptions } from "../../mod.ts";

const WAIT = 3000;

/** A socket's data: the room of `/ws?room=…` it subscribed to. */
export interface Member {
  room: string | null;
}

/**
 * An app under test, listening on `port`, with `wisp` attached at `/ws`. Its routes:
 * `GET /` answers `welcome` (text), `GET /users/:id` answers `{ "id": id }` (JSON), and
 * `POST /rooms/:room/messages` with a JSON `{ "text": … }` publishes the text to the room and
 * answers `{ "delivered": n }`, the count `wisp.publish` returned; anything else is the framework's 404.
 */
export interface AppUnderTest {
  port: number;
  wisp: AttachedServer<Member>;
  /** Closes Wisp and the app's server. */
  stop(): Promise<void>;
}

/** Builds the app with Wisp attached to its server with `options`, and starts it listening. */
export type StartApp = (options: AttachOptions<Member>) => Promise<AppUnderTest>;

/**
 * Wisp's side of every app: `/ws`, joining the room the URL names; it echoes, and answers `bye`
 * by closing with 4001. Each close its handler hears goes to `closes`.
 */
export function memberOptions(closes: [number, string][] = []): AttachOptions<Member> {
  return {
    path: "/ws",
    upgrade: (request) => ({ data: { room: new URL(request.url).searchParams.get("room") } }),
    websocket: {
      open(ws) {
        if (ws.data.room !== null) ws.subscribe(ws.data.room);
      },
      message(ws, data) {
        if (data === "bye") ws.close(4001, "bye from the server");
        else ws.send(data);
      },
      close: (_ws, code, reason) => void closes.push([code, reason]),
    },
  };
}

/** The tests every framework's app passes, in a `describe` named after the framework. */
export function describeAppOnOnePort(framework: string, start: StartApp): void {
  describe(`${framework} and Wisp on one port`, () => {
    const closes: [number, string][] = [];
    let app: AppUnderTest | null = null;
    const started = async () => app ??= await start(memberOptions(closes));
    after(() => app?.stop());

    it("serves the app's pages: a GET route, a route parameter, the framework's own 404", async () => {
      const { port } = await started();
      const home = await fetch(`http://127.0.0.1:${port}/`);
      assert.deepEqual([home.status, await home.text()], [200, "welcome"]);
      const user = await fetch(`http://127.0.0.1:${port}/users/42`);
      assert.match(user.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await user.json(), { id: "42" });
      const missing = await fetch(`http://127.0.0.1:${port}/ws`); // no Upgrade: the app's to answer
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    });

    it("echoes through Wisp at /ws on the same port, frames in the request's packet too", async () => {
      const { port } = await started();
      const client = await RawClient.connect(port);
      try {
        client.write(concat(new TextEncoder().encode(upgradeRequest("/ws")), frame(TEXT, "early ✓")));
        assert.equal((await client.readResponse(WAIT)).status, 101);
        assert.equal(await readText(client), "early ✓");
        client.write(frame(TEXT, "later"));
        assert.equal(await readText(client), "later");
      } finally {
        client.destroy();
      }
    });

    it("publishes the app's JSON POST to the room's subscribers, and to no one else", async () => {
      const { port } = await started();
      const members = await Promise.all(
        ["/ws?room=a", "/ws?room=a", "/ws?room=b"].map((path) => RawClient.open(port, path)),
      );
      try {
        const response = await fetch(`http://127.0.0.1:${port}/rooms/a/messages`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ text: "hello room a" }),
        });
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { delivered: 2 });
        assert.deepEqual(await Promise.all(members.slice(0, 2).map((member) => readText(member))), [
          "hello room a",
          "hello room a",
        ]);
        // Room b's member had nothing queued before this echo (the publish went out before it).
        members[2].write(frame(TEXT, "anything for me?"));
        assert.equal(await readText(members[2]), "anything for me?");
      } finally {
        for (const member of members) member.destroy();
      }
    });

    it("closes with the client's code, and with the server's (4001), both ways", async () => {
      const { port, wisp } = await started();
      const leaving = await RawClient.open(port, "/ws");
      const sent = await RawClient.open(port, "/ws");
      try {
        leaving.write(frame(CLOSE, closePayload(4000, "client done")));
        assert.deepEqual(await leaving.readClose(WAIT).then(({ code }) => code), 4000);
        await leaving.waitForEnd(WAIT);

        sent.write(frame(TEXT, "bye"));
        const { code, reason } = await sent.readClose(WAIT);
        assert.deepEqual([code, reason], [4001, "bye from the server"]);
        sent.write(frame(CLOSE, closePayload(4001)));
        await sent.waitForEnd(WAIT);

        assert.deepEqual(closes.slice(-2), [[4000, "client done"], [4001, ""]]);
        const { sent: closesSent, received } = wisp.stats().closeCodes;
        assert.deepEqual([received[4000], closesSent[4000], closesSent[4001], received[4001]], [1, 1, 1, 1]);
      } finally {
        leaving.destroy();
        sent.destroy();
      }
    });

    it("wisp.close() sends 1001, and the app goes on serving, its kept-alive connections too", async () => {
      const { port, wisp } = await started();
      const socket = await RawClient.open(port, "/ws");
      const keptAlive = await RawClient.connect(port);
      try {
        assert.deepEqual(await getOn(keptAlive, "/"), [200, "welcome"]);
        const closed = wisp.close();
        assert.equal((await socket.readClose(WAIT)).code, 1001);
        socket.write(frame(CLOSE, closePayload(1001)));
        await closed;
        assert.deepEqual(await getOn(keptAlive, "/"), [200, "welcome"]);
        const again = await fetch(`http://127.0.0.1:${port}/users/7`);
        assert.deepEqual(await again.json(), { id: "7" });
      } finally {
        socket.destroy();
        keptAlive.destroy();
      }
    });
  });
}
