import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { concat, frame, RawClient, upgradeRequest } from "./helpers/raw_client.ts";
import type { Server } from "../mod.ts";
import {
  CHAT_PROTOCOL,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  parseClientMessage,
  startChatServer,
} from "../src/chat/server.ts";

// deno-lint-ignore no-explicit-any
type Message = Record<string, any>;

/** A chat client over the runtime's own `WebSocket`, with a queue of the JSON messages it got. */
class ChatClient {
  readonly ws: WebSocket;
  readonly #queue: Message[] = [];
  #wake: (() => void) | null = null;
  #closed = false;
  readonly closed: Promise<CloseEvent>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (event) => {
      this.#queue.push(JSON.parse(event.data as string));
      this.#notify();
    };
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        this.#closed = true;
        this.#notify();
        resolve(event);
      });
    });
  }

  static open(
    server: Server,
    path = "/chat",
    protocols: string | string[] = CHAT_PROTOCOL,
  ): Promise<ChatClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, protocols);
    const client = new ChatClient(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out opening the WebSocket")), 5000);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(client);
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error("the WebSocket failed to open"));
      };
    });
  }

  /** Opens a client and joins as `name` (since `since`), returning it with its welcome. */
  static async join(server: Server, name: string, since?: Message): Promise<[ChatClient, Message]> {
    const client = await ChatClient.open(server);
    client.send({ type: "join", name, since });
    const welcome = await client.next();
    assert.equal(welcome.type, "welcome", `expected a welcome, got ${JSON.stringify(welcome)}`);
    return [client, welcome];
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The next message, waiting at most `ms`. */
  async next(ms = 3000): Promise<Message> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      if (this.#closed) throw new Error("the socket closed while waiting for a message");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a message");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.#queue.shift()!;
  }

  /** Asserts that nothing arrives for `ms`. */
  async quiet(ms = 150): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    assert.deepEqual(this.#queue, [], "expected no message");
  }

  /** Sends `message` and expects an error reply containing `pattern`. */
  async expectError(message: unknown, pattern: RegExp): Promise<void> {
    this.send(message);
    const reply = await this.next();
    assert.equal(reply.type, "error", `expected an error, got ${JSON.stringify(reply)}`);
    assert.equal(typeof reply.message, "string");
    assert.match(reply.message, pattern);
    assert.deepEqual(Object.keys(reply).sort(), ["message", "type"]);
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    await this.closed;
  }
}

function assertRecentTime(time: unknown): void {
  assert.equal(typeof time, "string");
  const at = Date.parse(time as string);
  assert.ok(Number.isFinite(at), `time ${time} is not a date`);
  assert.ok(Math.abs(at - Date.now()) < 60_000, `time ${time} is not now`);
}

describe("chat server", () => {
  let server: Server;
  const clients: ChatClient[] = [];
  const track = <T extends ChatClient | [ChatClient, Message]>(value: T): T => {
    clients.push(Array.isArray(value) ? value[0] : value as ChatClient);
    return value;
  };

  before(() => {
    server = startChatServer({ port: 0 });
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  });

  it("serves the page at / as self-contained UTF-8 HTML", async () => {
    const response = await fetch(server.url);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(response.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const html = await response.text();
    assert.match(html, /^<!doctype html>/i);
    for (const id of ["name", "join", "text", "send", "messages", "online", "status"]) {
      assert.match(html, new RegExp(`id="${id}"`), `the page has #${id}`);
    }
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//i, "no external assets");
    assert.doesNotMatch(
      html,
      /innerHTML|insertAdjacentHTML|document\.write/,
      "user text is never parsed as HTML",
    );
  });

  it("answers HEAD / without a body and other methods on / with 405", async () => {
    const head = await fetch(server.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await head.text(), "");
    const post = await fetch(server.url, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
  });

  it("answers 404 to other plain HTTP paths", async () => {
    for (const path of ["/index.html", "/chat", "/favicon.ico", "/nope?x=1"]) {
      const response = await fetch(new URL(path, server.url));
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
  });

  it("answers 404 to WebSocket upgrades on paths other than /chat", async () => {
    for (const path of ["/", "/chat/", "/chatroom", "/other"]) {
      const client = await RawClient.connect(server.port);
      client.write(upgradeRequest(path, { "Sec-WebSocket-Protocol": CHAT_PROTOCOL }));
      const response = await client.readResponse();
      assert.equal(response.status, 404, path);
      client.destroy();
    }
  });

  it("answers 400 to upgrades on /chat that do not offer the chat subprotocol", async () => {
    for (const protocol of [null, "superchat", "echo, json"]) {
      const client = await RawClient.connect(server.port);
      client.write(upgradeRequest("/chat", { "Sec-WebSocket-Protocol": protocol }));
      const response = await client.readResponse();
      assert.equal(response.status, 400, String(protocol));
      assert.match(response.body, /"chat" subprotocol/);
      client.destroy();
    }
  });

  it("agrees on the chat subprotocol", async () => {
    const client = track(await ChatClient.open(server, "/chat", ["v2.chat", CHAT_PROTOCOL]));
    assert.equal(client.ws.protocol, "chat");
    const raw = await RawClient.connect(server.port);
    raw.write(upgradeRequest("/chat?room=1", { "Sec-WebSocket-Protocol": "other, chat" }));
    const response = await raw.readResponse();
    assert.equal(response.status, 101);
    assert.equal(response.headers.get("sec-websocket-protocol"), "chat");
    raw.destroy();
    await client.close();
  });

  it("welcomes a joiner with the online count and tells the others", async () => {
    const [alice, aliceWelcome] = track(await ChatClient.join(server, "  Alice  "));
    assert.equal(aliceWelcome.name, "Alice");
    assert.equal(aliceWelcome.online, 1);
    assertRecentTime(aliceWelcome.time);

    const [bob, bobWelcome] = track(await ChatClient.join(server, "Bob"));
    assert.equal(bobWelcome.online, 2);
    const notice = await alice.next();
    assert.equal(notice.type, "join");
    assert.equal(notice.name, "Bob");
    assert.equal(notice.online, 2);
    assertRecentTime(notice.time);
    await bob.quiet(); // the joiner gets its welcome, not its own join notice
    await Promise.all([alice.close(), bob.close()]);
  });

  it("relays a message to everyone who joined, with the sender's name and the server time", async () => {
    const [alice] = track(await ChatClient.join(server, "alice"));
    const [bob] = track(await ChatClient.join(server, "bob"));
    await alice.next(); // bob's join notice
    const lurker = track(await ChatClient.open(server)); // connected but not joined

    alice.send({ type: "message", text: "  hello, bob ✓ 🚀\nsecond line " });
    for (const client of [bob, alice]) {
      const message = await client.next();
      assert.equal(message.type, "message");
      assert.equal(message.name, "alice");
      assert.equal(message.text, "hello, bob ✓ 🚀\nsecond line");
      assertRecentTime(message.time);
    }
    bob.send({ type: "message", text: "hi alice" });
    assert.deepEqual((await alice.next()).text, "hi alice");
    assert.deepEqual((await bob.next()).name, "bob");
    await lurker.quiet();
    await Promise.all([alice.close(), bob.close(), lurker.close()]);
  });

  it("sends a leave notice with the new count when a joined socket closes", async () => {
    const [alice] = track(await ChatClient.join(server, "alice"));
    const [bob] = track(await ChatClient.join(server, "bob"));
    await alice.next(); // bob joined
    const lurker = track(await ChatClient.open(server));
    await lurker.close(); // a socket that never joined leaves no notice
    await bob.close();
    const notice = await alice.next();
    assert.equal(notice.type, "leave");
    assert.equal(notice.name, "bob");
    assert.equal(notice.online, 1);
    assertRecentTime(notice.time);
    await alice.quiet();
    await alice.close();
  });

  it("sends a leave notice when a joined client drops without a closing handshake", async () => {
    const [alice] = track(await ChatClient.join(server, "alice"));
    const raw = await RawClient.open(server.port, "/chat", { "Sec-WebSocket-Protocol": "chat" });
    raw.write(frame(0x1, JSON.stringify({ type: "join", name: "carol" })));
    const welcome = JSON.parse(new TextDecoder().decode((await raw.readFrame()).payload));
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.online, 2);
    assert.equal((await alice.next()).name, "carol");
    raw.destroy();
    const notice = await alice.next();
    assert.deepEqual([notice.type, notice.name, notice.online], ["leave", "carol", 1]);
    await alice.close();
  });

  it("closes a client sending faster than anyone types with 1008; the others see it leave", async () => {
    const [alice] = track(await ChatClient.join(server, "alice"));
    const raw = await RawClient.open(server.port, "/chat", { "Sec-WebSocket-Protocol": "chat" });
    raw.write(frame(0x1, JSON.stringify({ type: "join", name: "flood" })));
    assert.equal((await alice.next()).name, "flood");
    const spam = frame(0x1, JSON.stringify({ type: "message", text: "spam" }));
    raw.write(concat(...Array.from({ length: 60 }, () => spam))); // the burst allows 40, with the join
    const close = await raw.readClose();
    assert.equal(close.code, 1008);
    assert.match(close.reason, /maxMessagesPerSecond \(20\/s\)/);
    raw.destroy();
    const seen: Message[] = [];
    while (seen.at(-1)?.type !== "leave") seen.push(await alice.next());
    // The join took one token of 40; the bucket refills by 20 a second meanwhile.
    const relayed = seen.length - 1;
    assert.ok(relayed >= 39 && relayed < 60, `${relayed} messages relayed before the leave`);
    assert.ok(seen.slice(0, -1).every((message) => message.text === "spam"));
    await alice.close();
  });

  it("answers each invalid message with an error to that client only, and keeps going", async () => {
    const [witness] = track(await ChatClient.join(server, "witness"));
    const client = track(await ChatClient.open(server));

    await client.expectError("{not json", /not valid JSON/);
    await client.expectError("", /not valid JSON/);
    await client.expectError("[1,2]", /JSON object/);
    await client.expectError("42", /JSON object/);
    await client.expectError({ type: "dance" }, /unknown message type \("dance"\)/);
    await client.expectError({ name: "no type" }, /unknown message type \(missing\)/);
    await client.expectError({ type: "message", text: "too early" }, /join first/);
    await client.expectError({ type: "join" }, /"name" string/);
    await client.expectError({ type: "join", name: 7 }, /"name" string/);
    await client.expectError({ type: "join", name: "   " }, /name is empty/);
    await client.expectError({ type: "join", name: "x".repeat(MAX_NAME_LENGTH + 1) }, /name is too long/);
    await client.expectError({ type: "join", name: "a\u0000b" }, /control characters/);
    client.ws.send(new Uint8Array([1, 2, 3]));
    assert.match((await client.next()).message, /not binary/);
    await witness.quiet();

    // Still usable: a valid join goes through; the longest name counts characters, not bytes.
    const longest = "🚀".repeat(MAX_NAME_LENGTH);
    client.send({ type: "join", name: longest });
    const welcome = await client.next();
    assert.deepEqual([welcome.type, welcome.name, welcome.online], ["welcome", longest, 2]);
    assert.equal((await witness.next()).type, "join");

    await client.expectError({ type: "join", name: "again" }, /already joined/);
    await client.expectError({ type: "message" }, /"text" string/);
    await client.expectError({ type: "message", text: "" }, /text is empty/);
    await client.expectError({ type: "message", text: " \n\t " }, /text is empty/);
    await client.expectError({ type: "message", text: "y".repeat(MAX_TEXT_LENGTH + 1) }, /too long/);
    await witness.quiet();

    const longestText = "é".repeat(MAX_TEXT_LENGTH);
    client.send({ type: "message", text: longestText });
    assert.equal((await witness.next()).text, longestText);
    assert.equal((await client.next()).text, longestText);
    assert.equal(client.ws.readyState, WebSocket.OPEN);
    await Promise.all([client.close(), witness.close()]);
  });
});

/** A message's position in the chat topic's history, as a client hands it back in `since`. */
const positionOf = (message: Message) => ({ epoch: message.epoch, offset: message.offset });

describe("chat recovery after a dropped connection", () => {
  let server: Server;
  const clients: ChatClient[] = [];
  const track = (value: [ChatClient, Message]): [ChatClient, Message] => {
    clients.push(value[0]);
    return value;
  };

  before(() => {
    server = startChatServer({ port: 0 });
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  });

  it("numbers every publish in the topic's history, and welcomes with the joiner's own position", async () => {
    const [alice, aliceWelcome] = track(await ChatClient.join(server, "alice"));
    assert.deepEqual([aliceWelcome.recovered, aliceWelcome.missed], [true, 0]);
    assert.equal("reason" in aliceWelcome, false);
    assert.match(aliceWelcome.epoch, /^[0-9a-f]{16}$/);
    // The position of the joiner's own join notice, which the others get.
    assert.deepEqual(positionOf(aliceWelcome), await server.position("chat"));
    const [bob, bobWelcome] = track(await ChatClient.join(server, "bob"));
    const bobJoined = await alice.next();
    assert.deepEqual(positionOf(bobJoined), positionOf(bobWelcome));
    assert.equal(Number(bobJoined.offset), Number(aliceWelcome.offset) + 1);
    bob.send({ type: "message", text: "numbered" });
    for (const client of [alice, bob]) {
      const message = await client.next();
      assert.deepEqual([message.type, message.text], ["message", "numbered"]);
      assert.deepEqual(positionOf(message), {
        epoch: aliceWelcome.epoch,
        offset: String(Number(bobJoined.offset) + 1),
      });
    }
    await Promise.all([alice.close(), bob.close()]);
  });

  it("sends a join with since exactly what was missed, once each and in order, before its welcome", async () => {
    const [alice] = track(await ChatClient.join(server, "alice"));
    const [bob] = track(await ChatClient.join(server, "bob"));
    const lastSeen = await alice.next(); // bob's join notice: the last message alice got
    assert.equal(lastSeen.name, "bob");
    await alice.close();
    const missed = [await bob.next()]; // alice's leave notice
    assert.deepEqual([missed[0].type, missed[0].name], ["leave", "alice"]);
    for (const text of ["one", "two", "three"]) bob.send({ type: "message", text });
    for (let i = 0; i < 3; i++) missed.push(await bob.next());

    const back = await ChatClient.open(server);
    clients.push(back);
    back.send({ type: "join", name: "alice", since: positionOf(lastSeen) });
    // The very messages bob got, as he got them (positions included), then the welcome.
    for (const message of missed) assert.deepEqual(await back.next(), message);
    const welcome = await back.next();
    assert.deepEqual(
      [welcome.type, welcome.recovered, welcome.missed, welcome.epoch],
      ["welcome", true, missed.length, lastSeen.epoch],
    );
    assert.equal(Number(welcome.offset), Number(missed.at(-1)!.offset) + 1);
    const notice = await bob.next();
    assert.deepEqual([notice.type, notice.name, notice.offset], ["join", "alice", welcome.offset]);
    // Nothing is sent twice: the next message after the welcome is the next one published.
    bob.send({ type: "message", text: "four" });
    const four = await back.next();
    assert.deepEqual([four.text, four.offset], ["four", String(Number(welcome.offset) + 1)]);
    assert.deepEqual(await bob.next(), four);
    await Promise.all([back.close(), bob.close()]);
  });

  it("welcomes with recovered false for a position of another epoch or beyond the latest", async () => {
    const cases: [(latest: Message) => Message, string][] = [
      [
        ({ epoch }) => ({
          epoch: epoch === "0123456789abcdef" ? "fedcba9876543210" : "0123456789abcdef",
          offset: "1",
        }),
        "epoch",
      ],
      [({ epoch, offset }) => ({ epoch, offset: String(Number(offset) + 1) }), "future"],
    ];
    for (const [since, reason] of cases) {
      // ChatClient.join checks that the welcome comes first: nothing is replayed.
      const [client, welcome] = track(
        await ChatClient.join(server, "lost", since(await server.position("chat"))),
      );
      assert.deepEqual([welcome.recovered, welcome.missed, welcome.reason], [false, 0, reason]);
      // Subscribed all the same, at the current position.
      assert.deepEqual(positionOf(welcome), await server.position("chat"));
      await client.close();
    }
  });

  it("recovers from just before the oldest message kept, and not from one older", async () => {
    const own = startChatServer({ port: 0 });
    const mine: ChatClient[] = [];
    try {
      const [witness] = await ChatClient.join(own, "witness");
      mine.push(witness);
      const senders: [ChatClient, Message][] = [];
      for (const name of ["s1", "s2", "s3"]) {
        senders.push(await ChatClient.join(own, name));
        mine.push(senders.at(-1)![0]);
      }
      // 102 messages (34 each, within the burst the rate allows) and 3 join notices: more than is kept.
      for (const [sender, { name }] of senders) {
        for (let i = 0; i < 34; i++) sender.send({ type: "message", text: `${name} #${i}` });
      }
      for (let i = 0; i < 3 + 102; i++) await witness.next();
      /** The latest position, how many messages are kept, and the offset of the oldest. */
      const history = async () => {
        const latest = await own.position("chat");
        const kept = own.stats().history!.messages;
        assert.ok(kept > 0 && kept < Number(latest.offset), `${kept} of ${latest.offset} kept`);
        return {
          epoch: latest.epoch,
          latest: Number(latest.offset),
          kept,
          oldest: Number(latest.offset) - kept + 1,
        };
      };

      const before = await history();
      const back = await ChatClient.open(own);
      mine.push(back);
      back.send({
        type: "join",
        name: "back",
        since: { epoch: before.epoch, offset: String(before.oldest - 1) },
      });
      for (let offset = before.oldest; offset <= before.latest; offset++) {
        assert.deepEqual(positionOf(await back.next()), { epoch: before.epoch, offset: String(offset) });
      }
      const welcome = await back.next();
      assert.deepEqual([welcome.type, welcome.recovered, welcome.missed], ["welcome", true, before.kept]);

      const now = await history(); // its join notice made the oldest one go
      const [tooOld, refused] = await ChatClient.join(own, "late", {
        epoch: now.epoch,
        offset: String(now.oldest - 2),
      });
      mine.push(tooOld);
      assert.deepEqual([refused.recovered, refused.missed, refused.reason], [false, 0, "too old"]);
    } finally {
      await Promise.all(mine.map((client) => client.close()));
      await own.close();
    }
  });

  it("refuses a malformed since with an error, and leaves the client able to join", async () => {
    const [witness, witnessWelcome] = track(await ChatClient.join(server, "witness"));
    const client = await ChatClient.open(server);
    clients.push(client);
    const join = (since: unknown) => ({ type: "join", name: "late", since });
    const shape = /"since" must be \{"epoch":"…","offset":"…"\}, both strings/;
    const offset = /"since" has a malformed offset/;
    const epoch = witnessWelcome.epoch;
    await client.expectError(join(12), shape);
    await client.expectError(join("7"), shape);
    await client.expectError(join([epoch, "1"]), shape);
    await client.expectError(join({ epoch }), shape);
    await client.expectError(join({ epoch: 1, offset: "1" }), shape);
    await client.expectError(join({ epoch, offset: 1 }), shape);
    for (const bad of ["", "-1", "01", "1.5", "1e3", " 1", "9".repeat(16)]) {
      await client.expectError(join({ epoch, offset: bad }), offset);
    }
    // Not subscribed by the refused joins: a message sent now is not replayed to it...
    witness.send({ type: "message", text: "between" });
    assert.equal((await witness.next()).text, "between");
    // ...and no one was told of them: the next notice the witness gets is the valid join's.
    client.send({ type: "join", name: "late" });
    const welcome = await client.next();
    assert.deepEqual([welcome.type, welcome.name, welcome.recovered, welcome.missed], [
      "welcome",
      "late",
      true,
      0,
    ]);
    const notice = await witness.next();
    assert.deepEqual([notice.type, notice.name, notice.offset], ["join", "late", welcome.offset]);
    await Promise.all([client.close(), witness.close()]);
  });
});

describe("chat message validation", () => {
  it("trims and accepts valid messages", () => {
    assert.deepEqual(parseClientMessage('{"type":"join","name":" Ada "}', false), {
      type: "join",
      name: "Ada",
      since: null,
    });
    assert.deepEqual(parseClientMessage('{"type":"join","name":"Ada","since":null}', false), {
      type: "join",
      name: "Ada",
      since: null,
    });
    const since = { epoch: "0123456789abcdef", offset: "12" };
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: "join", name: "Ada", since }), false), {
      type: "join",
      name: "Ada",
      since,
    });
    assert.deepEqual(parseClientMessage('{"type":"message","text":"hi "}', true), {
      type: "message",
      text: "hi",
    });
  });

  it("counts characters as code points", () => {
    const name = "👩🏽".repeat(MAX_NAME_LENGTH / 2); // two code points each
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: "join", name }), false), {
      type: "join",
      name,
      since: null,
    });
    assert.ok("error" in parseClientMessage(JSON.stringify({ type: "join", name: name + "x" }), false));
  });

  it("refuses what the protocol does not allow", () => {
    const refused: [string | Uint8Array, boolean][] = [
      ["null", false],
      ['"join"', false],
      ['{"type":"join","name":"a"}', true],
      ['{"type":"message","text":"a"}', false],
      ['{"type":"message","text":["a"]}', true],
      ['{"type":"join","name":"a","since":"1"}', false],
      ['{"type":"join","name":"a","since":{"epoch":"e"}}', false],
      ['{"type":"join","name":"a","since":{"epoch":"e","offset":1}}', false],
      [new Uint8Array(0), true],
    ];
    for (const [data, joined] of refused) {
      const result = parseClientMessage(data, joined);
      assert.ok("error" in result, `${String(data)} (joined: ${joined}) should be refused`);
    }
  });
});
