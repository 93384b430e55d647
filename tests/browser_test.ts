/**
 * The chat page and the echo server in a real browser: headless Chromium (playwright-core)
 * against servers started as a user starts them, `deno run -A mod.ts` or `bun run mod.ts`.
 * Skipped, with the reason, where Chromium is not installed.
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { browserSkipReason, launchBrowser, Lazy, type TestBrowser, withTimeout } from "./helpers/browser.ts";
import { type CliServer, startCli } from "./helpers/cli.ts";
import { testCertificate, tlsSkipReason } from "./helpers/tls.ts";
import { RedisServer, redisSkipReason } from "./helpers/redis.ts";

/** The bit of the DOM that the functions evaluated in the page use (they run there, not here). */
interface PageElement {
  textContent: string | null;
}
declare const document: {
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};

const skip = browserSkipReason;
if (skip) console.warn(`browser tests skipped: ${skip}`);

/** Longest a browser test may take, setup included (`withTimeout`, for both runtimes). */
const TEST_MS = 25_000;
/** The runner's own limit, a little longer, so that `withTimeout` reports first. */
const options = { skip, timeout: TEST_MS + 5_000 };
/**
 * Without Chromium, `deno test` must skip the groups too (or it counts each group of skipped
 * tests as passed), while `bun test` leaves the tests of a skipped group out of its report
 * altogether, so there only the tests are skipped.
 */
const group = { skip: "Bun" in globalThis ? false : skip };

const newBrowser = (ignoreHTTPSErrors = false) =>
  new Lazy(() => launchBrowser({ ignoreHTTPSErrors }), (browser) => browser.close());
const newServer = (args: string[]) => new Lazy(() => startCli(args), (server) => server.stop());

/** Opens the chat page and waits until its WebSocket is open. */
async function openChat(browser: TestBrowser, server: CliServer): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#status[data-state="open"]');
  return page;
}

/** Opens the chat page and joins as `name`. */
async function joinChat(browser: TestBrowser, server: CliServer, name: string): Promise<Page> {
  const page = await openChat(browser, server);
  await page.fill("#name", name);
  await page.click("#join");
  await page.waitForSelector('#messages li[data-kind="welcome"]');
  assert.equal(await page.isVisible("#text"), true, "the message box shows once joined");
  return page;
}

/** Types `text` into the message box and sends it. */
async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send");
}

/** Waits until `#online` shows `count`. */
async function waitForOnline(page: Page, count: number): Promise<void> {
  await page.waitForSelector(`#online[data-count="${count}"]`);
  assert.equal(await page.textContent("#online"), `${count} online`);
}

/** The chat messages on a page: sender, text and time as displayed. */
function chatMessages(page: Page): Promise<{ name: string; text: string; datetime: string }[]> {
  return page.$$eval('#messages li[data-kind="message"]', (items) =>
    items.map((item) => ({
      name: item.querySelector(".sender")?.textContent ?? "",
      text: item.querySelector(".body")?.textContent ?? "",
      datetime: item.querySelector("time")?.getAttribute("datetime") ?? "",
    })));
}

/** Waits until a chat message with `text` is on the page, and returns it. */
async function waitForMessage(page: Page, text: string) {
  await page.waitForFunction(
    (wanted) =>
      [...document.querySelectorAll('#messages li[data-kind="message"] .body')].some((body) =>
        body.textContent === wanted
      ),
    text,
  );
  return (await chatMessages(page)).find((message) => message.text === text)!;
}

/** Waits until a notice of `kind` with exactly `text` is on the page. */
async function waitForNotice(page: Page, kind: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([kind, text]) =>
      [...document.querySelectorAll(`#messages li[data-kind="${kind}"]`)].some((item) =>
        item.textContent === text
      ),
    [kind, text],
  );
}

async function closeAll(pages: Page[]): Promise<void> {
  await Promise.all(pages.map((page) => page.close().catch(() => {})));
}

describe("chat page in Chromium", group, () => {
  const browserOnce = newBrowser();
  const chatOnce = newServer(["--port", "0"]);
  let browser: TestBrowser;
  let chat: CliServer;
  const setup = async () => {
    [browser, chat] = await Promise.all([browserOnce.get(), chatOnce.get()]);
  };
  after(() => Promise.all([browserOnce.dispose(), chatOnce.dispose()]));

  it(
    "relays a message typed in one page to another, with sender, time and online count",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        await setup();
        const alice = await joinChat(browser, chat, "Alice");
        const bob = await joinChat(browser, chat, "Bob");
        try {
          await Promise.all([waitForOnline(alice, 2), waitForOnline(bob, 2)]);
          await waitForNotice(alice, "join", "Bob joined");

          await say(alice, "Hello from Alice ✓ 🚀");
          const received = await waitForMessage(bob, "Hello from Alice ✓ 🚀");
          assert.equal(received.name, "Alice");
          assert.ok(Math.abs(Date.parse(received.datetime) - Date.now()) < 60_000, received.datetime);
          assert.equal((await waitForMessage(alice, "Hello from Alice ✓ 🚀")).name, "Alice");
          assert.equal(await alice.inputValue("#text"), "", "the message box is cleared");

          await bob.fill("#text", "Hi Alice");
          await bob.press("#text", "Enter");
          assert.equal((await waitForMessage(alice, "Hi Alice")).name, "Bob");
        } finally {
          await closeAll([alice, bob]);
        }
      }),
  );

  it(
    "shows a leave notice and the lower count when a page closes",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        await setup();
        const stays = await joinChat(browser, chat, "Stays");
        const goes = await joinChat(browser, chat, "Goes");
        try {
          await waitForOnline(stays, 2);
          await goes.close();
          await waitForNotice(stays, "leave", "Goes left");
          await waitForOnline(stays, 1);
        } finally {
          await closeAll([stays, goes]);
        }
      }),
  );

  it(
    "uses the chat subprotocol and negotiates permessage-deflate",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        await setup();
        const page = await openChat(browser, chat);
        try {
          assert.equal(await page.getAttribute("#status", "data-protocol"), "chat");
          const agreed = await page.evaluate(() =>
            new Promise<{ protocol: string; extensions: string }>((resolve, reject) => {
              const ws = new WebSocket(`ws://${location.host}/chat`, ["other", "chat"]);
              ws.onopen = () => {
                resolve({ protocol: ws.protocol, extensions: ws.extensions });
                ws.close();
              };
              ws.onerror = () => reject(new Error("WebSocket failed"));
            })
          );
          assert.deepEqual(agreed, {
            protocol: "chat",
            extensions: "permessage-deflate; server_no_context_takeover",
          });
        } finally {
          await closeAll([page]);
        }
      }),
  );

  it(
    "displays names and messages that look like HTML as plain text",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        const imgName = "<img src=x onerror=__xss=1>";
        const boldName = "<b>bold</b>";
        const text = `<img src=x onerror="window.__xss=1"> and <b>bold</b>`;
        await setup();
        const first = await joinChat(browser, chat, imgName);
        const second = await joinChat(browser, chat, boldName);
        try {
          await waitForNotice(first, "join", `${boldName} joined`);
          await say(first, text);
          const received = await waitForMessage(second, text);
          assert.equal(received.name, imgName);
          await say(second, boldName);
          assert.equal((await waitForMessage(first, boldName)).name, boldName);
          await first.waitForTimeout(300); // time for an injected image's error handler to run
          for (const page of [first, second]) {
            const found = await page.evaluate(() => ({
              xss: (window as unknown as { __xss?: unknown }).__xss,
              injected: document.querySelectorAll("#messages img, #messages b, img, b").length,
            }));
            assert.deepEqual(found, { xss: undefined, injected: 0 });
          }
          assert.equal(
            await second.textContent('#messages li[data-kind="welcome"]'),
            `You joined as ${boldName}`,
          );
        } finally {
          await closeAll([first, second]);
        }
      }),
  );
});

describe("chat page reconnection in Chromium", group, () => {
  const browserOnce = newBrowser();
  let chat: CliServer | undefined;
  after(() => Promise.all([browserOnce.dispose(), chat?.stop()]));

  it(
    "reconnects with backoff after the server restarts, rejoins and can send again",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        let browser: TestBrowser;
        [browser, chat] = await Promise.all([browserOnce.get(), startCli(["--port", "0"])]);
        // Count the page's connection attempts.
        await browser.context.addInitScript(() => {
          const Native = WebSocket;
          const counter = window as unknown as { __attempts: number };
          counter.__attempts = 0;
          (window as unknown as { WebSocket: unknown }).WebSocket = class extends Native {
            constructor(url: string | URL, protocols?: string | string[]) {
              super(url, protocols);
              counter.__attempts++;
            }
          };
        });
        const phoenix = await joinChat(browser, chat!, "Phoenix");
        const witness = await joinChat(browser, chat!, "Witness");
        try {
          await waitForOnline(phoenix, 2);
          const port = chat!.port;
          await chat!.stop();
          await phoenix.waitForSelector('#status[data-state="closed"]:has-text("reconnecting in 0.5 s")');
          assert.equal(await phoenix.isDisabled("#send"), true, "sending is off while offline");
          const before = await phoenix.evaluate(() =>
            (window as unknown as { __attempts: number }).__attempts
          );
          await phoenix.waitForTimeout(2_500);
          const during = await phoenix.evaluate(() =>
            (window as unknown as { __attempts: number }).__attempts
          );
          // Retries after 0.5 s and 1.5 s (then 3.5 s): a few, not a tight loop.
          assert.ok(during - before >= 1 && during - before <= 4, `${during - before} attempts in 2.5 s`);

          chat = await startCli(["--port", String(port)]);
          for (const page of [phoenix, witness]) {
            await page.waitForSelector('#status[data-state="open"]', { timeout: 15_000 });
            await page.waitForSelector('#messages li[data-kind="welcome"]:has-text("Reconnected as")');
          }
          await waitForOnline(phoenix, 2);
          await say(phoenix, "back again");
          assert.equal((await waitForMessage(witness, "back again")).name, "Phoenix");

          // The successful reconnection reset the backoff: the next outage starts again at 0.5 s.
          await chat!.stop();
          await phoenix.waitForSelector('#status[data-state="closed"]:has-text("reconnecting in 0.5 s")', {
            timeout: 3_000,
          });
        } finally {
          await closeAll([phoenix, witness]);
        }
      }),
  );
});

describe("chat page over TLS in Chromium", group, () => {
  const browserOnce = newBrowser(true);
  const chatOnce = new Lazy(() => {
    const { certFile, keyFile } = testCertificate();
    return startCli(["--port", "0", "--cert", certFile, "--key", keyFile]);
  }, (server) => server.stop());
  after(() => Promise.all([browserOnce.dispose(), chatOnce.dispose()]));

  it(
    "serves the page over https and chats over wss",
    { ...options, skip: skip || tlsSkipReason },
    () =>
      withTimeout(TEST_MS, async () => {
        const [browser, chat] = await Promise.all([browserOnce.get(), chatOnce.get()]);
        assert.match(chat.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
        const [ada, bob] = [await joinChat(browser, chat, "Ada"), await joinChat(browser, chat, "Bob")];
        try {
          assert.equal(await ada.evaluate(() => location.protocol), "https:");
          await say(ada, "sealed");
          assert.equal((await waitForMessage(bob, "sealed")).name, "Ada");
        } finally {
          await closeAll([ada, bob]);
        }
      }),
  );
});

describe("chat across two processes through Redis in Chromium", group, () => {
  const browserOnce = newBrowser();
  const redisOnce = new Lazy(() => RedisServer.start(), (redis) => redis.stop());
  const chatsOnce = new Lazy(async () => {
    const redis = await redisOnce.get();
    return await Promise.all([1, 2].map(() => startCli(["--port", "0", "--redis", redis.url])));
  }, async (servers) => void await Promise.all(servers.map((server) => server.stop())));
  after(() => Promise.all([browserOnce.dispose(), chatsOnce.dispose()]).then(() => redisOnce.dispose()));

  it(
    "relays messages between pages served by different processes",
    { ...options, skip: skip || redisSkipReason },
    () =>
      withTimeout(TEST_MS, async () => {
        const [browser, [one, two]] = await Promise.all([browserOnce.get(), chatsOnce.get()]);
        assert.notEqual(one.port, two.port);
        const ada = await joinChat(browser, one, "Ada");
        const bob = await joinChat(browser, two, "Bob");
        try {
          await waitForNotice(ada, "join", "Bob joined");
          await say(ada, "from process one");
          assert.equal((await waitForMessage(bob, "from process one")).name, "Ada");
          await say(bob, "from process two");
          assert.equal((await waitForMessage(ada, "from process two")).name, "Bob");
        } finally {
          await closeAll([ada, bob]);
        }
      }),
  );
});

describe("echo server in Chromium", group, () => {
  const browserOnce = newBrowser();
  const echoOnce = newServer(["--echo", "--port", "0"]);
  after(() => Promise.all([browserOnce.dispose(), echoOnce.dispose()]));

  const SEED = "héllo wörld ✓ 你好 🚀 ";

  it(
    "negotiates permessage-deflate and echoes 1 MiB of random binary and 1 MiB of non-ASCII text byte for byte",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        const [browser, echo] = await Promise.all([browserOnce.get(), echoOnce.get()]);
        const page = await browser.newPage();
        try {
          // Chromium's local network access checks block about:blank and pages that did not come
          // from a loopback address (even ones a test fulfils) from reaching 127.0.0.1, so the test
          // runs in the page the echo server itself answers plain HTTP with (426, at its origin).
          const origin = echo.url.replace(/^ws/, "http");
          await page.goto(origin);
          assert.equal(await page.evaluate(() => location.origin + "/"), origin);
          const result = await page.evaluate(async ({ url, seed }) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            await new Promise((resolve, reject) => {
              ws.onopen = resolve;
              ws.onerror = () => reject(new Error("WebSocket failed to open"));
            });
            const replies: (string | ArrayBuffer)[] = [];
            const waiters: ((value: string | ArrayBuffer) => void)[] = [];
            ws.onmessage = (event) => {
              const waiter = waiters.shift();
              if (waiter) waiter(event.data);
              else replies.push(event.data);
            };
            const next = () =>
              replies.length > 0
                ? Promise.resolve(replies.shift()!)
                : new Promise<string | ArrayBuffer>((resolve) => waiters.push(resolve));

            const bytes = new Uint8Array(1024 * 1024);
            for (let at = 0; at < bytes.length; at += 65536) {
              crypto.getRandomValues(bytes.subarray(at, at + 65536));
            }
            const text = seed.repeat(Math.ceil(1024 * 1024 / new TextEncoder().encode(seed).length));

            ws.send(bytes);
            const binaryReply = await next();
            ws.send(text);
            const textReply = await next();
            ws.close();

            let binarySame = binaryReply instanceof ArrayBuffer && binaryReply.byteLength === bytes.length;
            if (binarySame) {
              const view = new Uint8Array(binaryReply as ArrayBuffer);
              for (let i = 0; i < bytes.length; i++) {
                if (view[i] !== bytes[i]) {
                  binarySame = false;
                  break;
                }
              }
            }
            const textBytes = new TextEncoder().encode(text);
            const replyBytes = new TextEncoder().encode(typeof textReply === "string" ? textReply : "");
            let textSame = textReply === text && replyBytes.length === textBytes.length;
            for (let i = 0; textSame && i < textBytes.length; i++) textSame = replyBytes[i] === textBytes[i];
            return {
              extensions: ws.extensions,
              binaryType: typeof binaryReply === "string" ? "string" : "ArrayBuffer",
              binaryLength: typeof binaryReply === "string" ? -1 : binaryReply.byteLength,
              binarySame,
              textType: typeof textReply,
              textBytes: textBytes.length,
              textSame,
              start: typeof textReply === "string" ? textReply.slice(0, seed.length) : "",
            };
          }, { url: echo.url, seed: SEED });
          // Chromium offers "permessage-deflate; client_max_window_bits"; Wisp compresses each
          // message alone and takes Chromium's context over.
          assert.equal(result.extensions, "permessage-deflate; server_no_context_takeover");
          assert.deepEqual(result, {
            extensions: result.extensions,
            binaryType: "ArrayBuffer",
            binaryLength: 1024 * 1024,
            binarySame: true,
            textType: "string",
            textBytes: result.textBytes,
            textSame: true,
            start: SEED,
          });
          assert.ok(result.textBytes >= 1024 * 1024);
        } finally {
          await closeAll([page]);
        }
      }),
  );
});
