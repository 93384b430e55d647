/**
 * A chat page served by a real Express app, in headless Chromium (playwright-core), chatting
 * through Wisp attached to the app's server: what one page sends shows in the other, compressed
 * both ways (Chromium offers permessage-deflate). Skipped, with the reason, without Chromium.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server as HttpServer } from "node:http";
import express from "express";
import type { Page } from "playwright-core";
import { browserSkipReason, launchBrowser, Lazy, withTimeout } from "./helpers/browser.ts";
import { closeHttpServer } from "./helpers/attached.ts";
import { attach, type AttachedServer } from "../mod.ts";

const skip = browserSkipReason;
if (skip) console.warn(`Express browser test skipped: ${skip}`);

/** Longest the test may take, setup included (`withTimeout`, for every runtime). */
const TEST_MS = 25_000;
/** The runner's own limit, a little longer, so that `withTimeout` reports first. */
const options = { skip, timeout: TEST_MS + 5_000 };
/** `deno test` counts the tests of a skipped group as passed unless the group is skipped; `bun test` leaves them out. */
const group = { skip: "Bun" in globalThis ? false : skip };

/** The app's page: a message list, a box to type in, and a WebSocket to Wisp at /chat. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Express chat</title>
<p id="status">connecting</p>
<ul id="messages"></ul>
<form id="form"><input id="text" autocomplete="off"><button id="send">Send</button></form>
<script>
  const status = document.getElementById("status");
  const socket = new WebSocket("ws://" + location.host + "/chat");
  socket.onopen = () => {
    status.textContent = "open";
    status.dataset.extensions = socket.extensions;
  };
  socket.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("messages").append(item);
  };
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    socket.send(text.value);
    text.value = "";
  };
</script>
`;

interface ChatApp {
  port: number;
  wisp: AttachedServer;
  /** The extensions each WebSocket agreed on, as Wisp saw them. */
  extensions: string[];
  stop(): Promise<void>;
}

/** Express serving the page, and Wisp on its server relaying every message to every page. */
async function startChat(): Promise<ChatApp> {
  const app = express();
  app.get("/", (_request, response) => void response.type("html").send(PAGE));
  const server = await new Promise<HttpServer>((resolve) => {
    const listening: HttpServer = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  const extensions: string[] = [];
  const wisp = attach(server, {
    path: "/chat",
    perMessageDeflate: true,
    websocket: {
      open(ws) {
        extensions.push(ws.extensions);
        ws.subscribe("room");
      },
      message: (_ws, data) => void wisp.publish("room", data),
    },
  });
  return {
    port: (server.address() as AddressInfo).port,
    wisp,
    extensions,
    async stop() {
      await wisp.close();
      await closeHttpServer(server);
    },
  };
}

/** Opens the page and waits until its WebSocket is open. */
async function openPage(page: Page, port: number): Promise<void> {
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector("#status:text-is('open')");
}

/** Waits until a message with exactly `text` is listed on `page`. */
async function waitForMessage(page: Page, text: string): Promise<void> {
  await page.locator("#messages li", { hasText: text }).first().waitFor();
  assert.ok((await page.locator("#messages li").allTextContents()).includes(text));
}

describe("an Express page in Chromium, chatting through Wisp attached to Express's server", group, () => {
  const browserOnce = new Lazy(() => launchBrowser(), (browser) => browser.close());
  const chatOnce = new Lazy(startChat, (chat) => chat.stop());
  after(() => Promise.all([browserOnce.dispose(), chatOnce.dispose()]));

  it(
    "shows a message typed in one page in the other, compressed both ways",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        const [browser, chat] = await Promise.all([browserOnce.get(), chatOnce.get()]);
        const [alice, bob] = await Promise.all([browser.newPage(), browser.newPage()]);
        try {
          await Promise.all([openPage(alice, chat.port), openPage(bob, chat.port)]);
          assert.match(await alice.getAttribute("#status", "data-extensions") ?? "", /^permessage-deflate/);
          assert.deepEqual(chat.extensions.map((agreed) => agreed.split(";")[0]), [
            "permessage-deflate",
            "permessage-deflate",
          ]);

          await alice.fill("#text", "Hello from Alice ✓ 🚀");
          await alice.click("#send");
          await waitForMessage(bob, "Hello from Alice ✓ 🚀");
          await waitForMessage(alice, "Hello from Alice ✓ 🚀");

          const long = "Bob says: ".concat("la ".repeat(1500)).trim(); // compressed (over the 1 KiB threshold)
          await bob.fill("#text", long);
          await bob.press("#text", "Enter");
          await waitForMessage(alice, long);
          const { received, sent } = chat.wisp.stats().bytes;
          assert.ok(received.wire < received.payload, `Chromium compressed: ${JSON.stringify(received)}`);
          assert.ok(sent.wire < sent.payload, `Wisp compressed: ${JSON.stringify(sent)}`);
        } finally {
          await Promise.all([alice.close(), bob.close()]);
        }
      }),
  );
});
