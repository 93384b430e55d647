/**
 * The chat page and the echo server in a real browser: headless Chromium (playwright-core)
 * against servers started as a user starts them, `deno run -A mod.ts` or `bun run mod.ts`.
 * Skipped, with the reason, where Chromium is not installed (and the tests that cut a page's
 * connection where `ss -K` cannot, as it needs root).
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  browserSkipReason,
  clientPorts,
  cutConnections,
  cutSkipReason,
  launchBrowser,
  Lazy,
  type TestBrowser,
  withTimeout,
} from "./helpers/browser.ts";
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
const cutSkip = skip || await cutSkipReason();
if (cutSkip && !skip) console.warn(`browser tests that cut a connection skipped: ${cutSkip}`);

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
/**
 * A browser whose pages log their WebSockets (see `logSockets`) and whose timers follow a clock
 * the tests hold (`context.clock`), so that a page's retry comes when a test lets it.
 */
const newClockedBrowser = () =>
  new Lazy(async () => {
    const browser = await launchBrowser();
    await logSockets(browser);
    await browser.context.clock.install();
    return browser;
  }, (browser) => browser.close());

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
  // A click in a page behind another waits about 2 s for animation frames that do not come.
  await page.bringToFront();
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

/** Every entry on a page, in order: its kind and text (a message's as `Sender: text`). */
function entries(page: Page): Promise<string[]> {
  return page.$$eval("#messages li", (items) =>
    items.map((item) => {
      const kind = item.getAttribute("data-kind");
      if (kind !== "message") return `${kind}: ${item.textContent}`;
      const sender = item.querySelector(".sender")?.textContent;
      return `message: ${sender}: ${item.querySelector(".body")?.textContent}`;
    }));
}

/** What a page's WebSockets did, as `logSockets` counts it. */
interface SocketLog {
  /** Connections the page opened. */
  attempts: number;
  /** The close codes its WebSockets saw, in order. */
  closes: number[];
}

/** Has every page of `browser` count its WebSocket attempts and the close codes they end with. */
async function logSockets(browser: TestBrowser): Promise<void> {
  await browser.context.addInitScript(() => {
    const Native = WebSocket;
    const log: SocketLog = { attempts: 0, closes: [] };
    (window as unknown as { __sockets: SocketLog }).__sockets = log;
    (window as unknown as { WebSocket: unknown }).WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        log.attempts++;
        this.addEventListener("close", (event) => log.closes.push(event.code));
      }
    };
  });
}

function socketLog(page: Page): Promise<SocketLog> {
  return page.evaluate(() => (window as unknown as { __sockets: SocketLog }).__sockets);
}

/** Waits until the page is offline and returns the milliseconds until it tries again. */
async function nextRetry(page: Page): Promise<number> {
  const status = await page.waitForSelector('#status[data-state="closed"][data-retry]');
  return Number(await status.getAttribute("data-retry"));
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
    "uses the chat subprotocol and negotiates permessage-deflate, the server keeping its context",
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
            extensions: "permessage-deflate",
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
  const browserOnce = newClockedBrowser();
  let chat: CliServer | undefined;
  after(() => Promise.all([browserOnce.dispose(), chat?.stop()]));

  it(
    "reconnects with backoff and jitter after the server restarts, rejoins, says what may be missing",
    options,
    () =>
      withTimeout(TEST_MS, async () => {
        let browser: TestBrowser;
        [browser, chat] = await Promise.all([browserOnce.get(), startCli(["--port", "0"])]);
        const clock = browser.context.clock;
        const phoenix = await joinChat(browser, chat!, "Phoenix");
        const witness = await joinChat(browser, chat!, "Witness");
        try {
          await waitForOnline(phoenix, 2);
          await clock.pauseAt(Date.now() + 1_000); // held from now on: each retry comes when let
          // The page's random draws, known: the jitter's least, middle and (nearly) greatest.
          await phoenix.evaluate(() => {
            const draws = [0, 0.5, 0.999];
            Math.random = () => draws.shift() ?? 0;
          });
          const port = chat!.port;
          await chat!.stop();
          // Each retry waits between half the delay and the delay, which doubles from 0.5 s.
          for (const [delay, expected] of [[500, 250], [1_000, 750], [2_000, 1_999]]) {
            const wait = await nextRetry(phoenix);
            assert.equal(wait, expected, `the retry for a delay of ${delay} ms`);
            assert.equal(
              await phoenix.textContent("#status"),
              `Offline, reconnecting in ${(wait / 1000).toFixed(1)} s`,
            );
            assert.equal(await phoenix.isDisabled("#send"), true, "sending is off while offline");
            const { attempts } = await socketLog(phoenix);
            await clock.runFor(wait - 1);
            assert.equal((await socketLog(phoenix)).attempts, attempts, "no attempt before its time");
            await clock.runFor(1);
            assert.equal((await socketLog(phoenix)).attempts, attempts + 1, "an attempt at its time");
          }

          chat = await startCli(["--port", String(port)]);
          await clock.runFor(10_000); // the longest delay: every page's retry is due
          for (const page of [phoenix, witness]) {
            await page.waitForSelector('#status[data-state="open"]');
            await page.waitForSelector('#messages li[data-kind="welcome"]:has-text("Reconnected as")');
            // The restarted server has a new history: what was said meanwhile cannot come back.
            await waitForNotice(page, "gap", "Some messages sent while you were away may be missing.");
          }
          await waitForOnline(phoenix, 2);
          await say(phoenix, "back again");
          assert.equal((await waitForMessage(witness, "back again")).name, "Phoenix");

          // The successful reconnection reset the backoff: the next outage starts again at 0.5 s.
          await chat!.stop();
          assert.equal(await nextRetry(phoenix), 250); // (a draw of 0)
        } finally {
          await closeAll([phoenix, witness]);
        }
      }),
  );
});

/** Starts the chat server(s) a resumption test runs against; pages join the first and the last. */
type StartChats = () => Promise<CliServer[]>;

describe("chat page resuming after its connection is cut, in Chromium", group, () => {
  const browserOnce = newClockedBrowser();
  const redisOnce = new Lazy(() => RedisServer.start(), (redis) => redis.stop());
  const chats: CliServer[] = [];
  after(async () => {
    await Promise.all([browserOnce.dispose(), ...chats.map((chat) => chat.stop())]);
    await redisOnce.dispose();
  });

  /**
   * Ada's page (on the first server) loses its TCP connection while Bob (on the last) sends: her
   * page sees 1006, comes back after its retry delay and shows what Bob sent meanwhile, once
   * each and in order, then what he sends later.
   */
  const resumes = (start: StartChats) => () =>
    withTimeout(TEST_MS, async () => {
      const browser = await browserOnce.get();
      const started = await start();
      chats.push(...started); // each stopped after the tests
      const [home, other] = [started[0], started.at(-1)!];
      const clock = browser.context.clock;
      await clock.resume(); // (held by the test before)
      const bob = await joinChat(browser, other, "Bob");
      // Ada's connections (her page's and its WebSocket's) are those that came with her page.
      const before = new Set(clientPorts(home.port));
      const ada = await joinChat(browser, home, "Ada");
      const adas = clientPorts(home.port).filter((port) => !before.has(port));
      try {
        await waitForNotice(bob, "join", "Ada joined");
        await say(bob, "before the cut");
        await waitForMessage(ada, "before the cut");

        // Held from now on, so that Ada stays away while Bob sends.
        await clock.pauseAt(Date.now() + 1_000);
        assert.equal(cutConnections(home.port, adas), adas.length);
        const wait = await nextRetry(ada);
        assert.ok(wait >= 250 && wait <= 500, `a first retry after ${wait} ms`);
        assert.deepEqual((await socketLog(ada)).closes, [1006]);
        await waitForNotice(bob, "leave", "Ada left");
        const missed = ["one", "two", "three", "four", "five"].map((n) => `while Ada is away: ${n}`);
        for (const text of missed) {
          await say(bob, text);
          await waitForMessage(bob, text); // published
        }
        await clock.runFor(wait - 1);
        assert.equal(await ada.getAttribute("#status", "data-state"), "closed", "Ada is still away");
        await clock.runFor(1);
        await ada.waitForSelector('#messages li[data-kind="welcome"]:has-text("Reconnected as Ada")');
        await say(bob, "after Ada is back");
        await waitForMessage(ada, "after Ada is back");

        const seen = await entries(ada);
        assert.deepEqual(seen.slice(seen.indexOf("message: Bob: before the cut")), [
          "message: Bob: before the cut",
          "leave: Ada left",
          ...missed.map((text) => `message: Bob: ${text}`),
          "welcome: Reconnected as Ada",
          "message: Bob: after Ada is back",
        ]);
        // Bob's connection was not cut: one WebSocket all along, one welcome.
        assert.deepEqual(await socketLog(bob), { attempts: 1, closes: [] });
        assert.deepEqual((await entries(bob)).filter((entry) => entry.startsWith("welcome")), [
          "welcome: You joined as Bob",
        ]);
      } finally {
        await closeAll([ada, bob]);
      }
    });

  it(
    "shows the messages sent while the page was cut off once each, in order (one process)",
    { ...options, skip: cutSkip },
    resumes(async () => [await startCli(["--port", "0"])]),
  );

  it(
    "shows them once each, in order, when the sender is on another process (Redis in streams mode)",
    { ...options, skip: cutSkip || redisSkipReason },
    resumes(async () => {
      const redis = await redisOnce.get();
      const flags = ["--port", "0", "--redis", redis.url, "--redis-mode", "streams"];
      return await Promise.all([startCli(flags), startCli(flags)]);
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
