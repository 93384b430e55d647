/**
 * The chat demo: `GET /` serves the page, `/chat` (subprotocol `chat`) carries JSON messages,
 * relayed to everyone who joined through one publish/subscribe topic whose history the server
 * keeps, so that a client whose connection dropped gets what it missed when it joins again.
 *
 * Client → server:
 * - `{"type":"join","name":"Ada"}`: joins the chat (name trimmed, 1–32 characters), once.
 *   Joining again after a dropped connection, a client adds the position of the last message it
 *   got (or of its welcome), `"since":{"epoch":"…","offset":"12"}`, and gets the messages sent
 *   after it first, in order and once each, then its welcome.
 * - `{"type":"message","text":"hi"}`: says something (trimmed, 1–2000 characters), after joining.
 *
 * Server → client (`time` is the server's clock as an ISO 8601 string; `online` counts joined users;
 * `epoch` and `offset` are a message's position in the topic's history, what `since` hands back):
 * - `{"type":"welcome","name","online","time","recovered","missed","epoch","offset"}`: to the
 *   joiner, after what it missed: `missed` messages were sent again, and `recovered` is false
 *   (with a `reason`: `epoch`, `future` or `too old`) when some could not be, as the server no
 *   longer has them; its position is the latest, the joiner's own join notice included.
 * - `{"type":"join","name","online","time","epoch","offset"}`: to everyone else who joined.
 * - `{"type":"leave","name","online","time","epoch","offset"}`: to everyone left, when a joined
 *   socket closes.
 * - `{"type":"message","name","text","time","epoch","offset"}`: to everyone who joined, the sender
 *   included.
 * - `{"type":"error","message"}`: to the one client whose message was refused.
 *
 * A client sending more than 20 messages a second (beyond a burst of 40) is closed with 1008.
 * @module
 */

import { type GapReason, type MessageData, ReadyState, type TopicPosition } from "../api.ts";
import type { ServeOptions } from "../options.ts";
import { serve, type Server } from "../server.ts";
import type { ServerWebSocket } from "../server_websocket.ts";
import { CHAT_PAGE, PAGE_SCRIPT, PAGE_STYLE } from "./page.ts";

/** The path of the WebSocket endpoint. */
export const CHAT_PATH = "/chat";
/** The subprotocol the endpoint speaks. */
export const CHAT_PROTOCOL = "chat";
/** The topic every joined socket subscribes to. */
export const CHAT_TOPIC = "chat";
/** Longest name, in characters (code points), after trimming. */
export const MAX_NAME_LENGTH = 32;
/** Longest message text, in characters (code points), after trimming. */
export const MAX_TEXT_LENGTH = 2000;
/** Largest frame a chat client may send; any valid message fits many times over. */
const MAX_PAYLOAD = 64 * 1024;
/** Messages a second a chat client may send on average: far more than anyone types. */
const MAX_MESSAGES_PER_SECOND = 20;
/** Messages a chat client may send at once above that rate. */
const MAX_MESSAGE_BURST = 40;

/** Options of {@linkcode startChatServer}. */
export type ChatServerOptions =
  & Pick<ServeOptions<ChatMember>, "port" | "hostname" | "tls" | "backplane" | "reusePort" | "metrics">
  & {
    /** Headers added to every 101 response (the command line names its worker in `X-Wisp-Worker`). */
    upgradeHeaders?: Record<string, string>;
  };

/** A message from a client, once validated (`since` null when the join gave none). */
export type ClientMessage =
  | { type: "join"; name: string; since: TopicPosition | null }
  | { type: "message"; text: string };

/**
 * A message from the server. Those it publishes (`join`, `leave`, `message`) reach their
 * subscribers with their position in the topic's history added (`epoch`, `offset`).
 */
export type ServerMessage =
  | {
    type: "welcome";
    name: string;
    online: number;
    time: string;
    recovered: boolean;
    missed: number;
    epoch: string;
    offset: string;
    reason?: GapReason;
  }
  | { type: "join" | "leave"; name: string; online: number; time: string }
  | { type: "message"; name: string; text: string; time: string }
  | { type: "error"; message: string };

/** Per-socket state: the name, once it asked to join, and whether the others were told. */
export interface ChatMember {
  /** The name the socket joined with, or null before it joins. */
  name: string | null;
  /** Whether its join notice went out (so that its leave notice goes out too). */
  joined: boolean;
}

/**
 * Validates one message from a client that has (`joined`) or has not joined yet. Returns the
 * message with its name or text trimmed, or `{ error }` with a message meant for that client.
 */
export function parseClientMessage(
  data: string | Uint8Array,
  joined: boolean,
): ClientMessage | { error: string } {
  if (typeof data !== "string") return { error: "send JSON as text messages, not binary ones" };
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { error: "the message is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: 'the message must be a JSON object with a "type"' };
  }
  const message = value as Record<string, unknown>;
  if (message.type === "join") {
    if (joined) return { error: "you have already joined" };
    const name = message.name;
    if (typeof name !== "string") return { error: 'a join needs a "name" string' };
    const trimmed = name.trim();
    if (trimmed === "") return { error: "the name is empty" };
    if (codePoints(trimmed) > MAX_NAME_LENGTH) {
      return { error: `the name is too long (at most ${MAX_NAME_LENGTH} characters)` };
    }
    if (/\p{Cc}/u.test(trimmed)) return { error: "the name contains control characters" };
    const since = message.since ?? null;
    if (since !== null && !isPositionShaped(since)) {
      return { error: 'a join\'s "since" must be {"epoch":"…","offset":"…"}, both strings' };
    }
    return { type: "join", name: trimmed, since };
  }
  if (message.type === "message") {
    if (!joined) return { error: 'join first: send {"type":"join","name":"..."}' };
    const text = message.text;
    if (typeof text !== "string") return { error: 'a message needs a "text" string' };
    const trimmed = text.trim();
    if (trimmed === "") return { error: "the message text is empty" };
    if (codePoints(trimmed) > MAX_TEXT_LENGTH) {
      return { error: `the message text is too long (at most ${MAX_TEXT_LENGTH} characters)` };
    }
    return { type: "message", text: trimmed };
  }
  const shown = typeof message.type === "string" ? `"${message.type.slice(0, 40)}"` : "missing";
  return { error: `unknown message type (${shown}); send "join" or "message"` };
}

/** Whether `value` is an object with string `epoch` and `offset` (whose value the history judges). */
function isPositionShaped(value: unknown): value is TopicPosition {
  if (typeof value !== "object" || value === null) return false;
  const { epoch, offset } = value as Record<string, unknown>;
  return typeof epoch === "string" && typeof offset === "string";
}

/**
 * What subscribers receive of a chat publish at `position`: its JSON object with the position's
 * `epoch` and `offset` first. Every chat publish is a JSON object with a `type`; anything else (a
 * stranger's publish on a shared backplane) goes as it came.
 */
function withPosition(data: string | Uint8Array, { epoch, offset }: TopicPosition): MessageData {
  if (typeof data !== "string" || !data.startsWith("{")) return data;
  return `{"epoch":${JSON.stringify(epoch)},"offset":${JSON.stringify(offset)},${data.slice(1)}`;
}

/**
 * Starts the chat server: the page at `/`, the WebSocket endpoint at `/chat`. Throws like
 * `serve` when the address cannot be bound.
 *
 * @example
 * ```ts
 * import { startChatServer } from "./server.ts";
 * const server = startChatServer({ port: 0 });
 * console.log(`open ${server.url}`);
 * await server.close();
 * ```
 */
export function startChatServer(options: ChatServerOptions = {}): Server {
  const send = (ws: ServerWebSocket<ChatMember>, message: ServerMessage) => ws.send(JSON.stringify(message));
  const server: Server = serve<ChatMember>({
    port: options.port ?? 3368,
    hostname: options.hostname ?? "127.0.0.1",
    tls: options.tls,
    backplane: options.backplane,
    reusePort: options.reusePort,
    metrics: options.metrics,
    path: CHAT_PATH,
    protocols: [CHAT_PROTOCOL],
    maxPayloadLength: MAX_PAYLOAD,
    maxMessagesPerSecond: MAX_MESSAGES_PER_SECOND,
    maxMessageBurst: MAX_MESSAGE_BURST,
    // Chat messages repeat their keys and names: with the server's context kept, each is a few
    // bytes on the wire (and every message is compressed, however short).
    perMessageDeflate: { serverContextTakeover: true },
    history: { envelope: withPosition },
    upgrade(_request, info) {
      if (!info.protocols.includes(CHAT_PROTOCOL)) {
        return textResponse(400, `this endpoint speaks the "${CHAT_PROTOCOL}" subprotocol; offer it`);
      }
      return { data: { name: null, joined: false }, headers: options.upgradeHeaders };
    },
    fetch: servePage,
    websocket: {
      async message(ws, data) {
        const message = parseClientMessage(data, ws.data.name !== null);
        if ("error" in message) return void send(ws, { type: "error", message: message.error });
        if (message.type === "join") return await join(ws, message.name, message.since);
        const time = new Date().toISOString();
        const notice: ServerMessage = { type: "message", name: ws.data.name!, text: message.text, time };
        server.publish(CHAT_TOPIC, JSON.stringify(notice));
      },
      close(ws) {
        const name = ws.data.name;
        if (name === null || !ws.data.joined) return;
        ws.data.name = null;
        ws.data.joined = false;
        const online = server.subscriberCount(CHAT_TOPIC);
        const notice: ServerMessage = { type: "leave", name, online, time: new Date().toISOString() };
        server.publish(CHAT_TOPIC, JSON.stringify(notice));
      },
    },
  });

  /**
   * Subscribes `ws` after sending it what it missed since `since`, tells the others, then welcomes
   * it with the latest position, its join notice included: the page's position covers everything
   * up to its own join.
   */
  async function join(ws: ServerWebSocket<ChatMember>, name: string, since: TopicPosition | null) {
    ws.data.name = name; // from now on a second join is refused
    const recovery = await ws.recover(CHAT_TOPIC, since);
    if (recovery.reason === "malformed") {
      ws.unsubscribe(CHAT_TOPIC);
      ws.data.name = null;
      return void send(ws, { type: "error", message: 'a join\'s "since" has a malformed offset' });
    }
    if (ws.readyState !== ReadyState.OPEN) return; // gone meanwhile: no one is told it came
    ws.data.joined = true;
    const time = new Date().toISOString();
    const online = server.subscriberCount(CHAT_TOPIC);
    ws.publish(CHAT_TOPIC, JSON.stringify({ type: "join", name, online, time } satisfies ServerMessage));
    const { epoch, offset } = await server.position(CHAT_TOPIC); // (after the join notice)
    const { recovered, replayed: missed, reason } = recovery; // (JSON leaves out a reason undefined)
    send(ws, { type: "welcome", name, online, time, recovered, missed, epoch, offset, reason });
  }

  return server;
}

/** The Content-Security-Policy for the page: only its own inline style and script, and `/chat`. */
let pagePolicy: Promise<string> | null = null;

function policy(): Promise<string> {
  return pagePolicy ??= Promise.all([sha256(PAGE_SCRIPT), sha256(PAGE_STYLE)]).then(([script, style]) =>
    [
      "default-src 'none'",
      `script-src 'sha256-${script}'`,
      `style-src 'sha256-${style}'`,
      "connect-src 'self'",
      "img-src data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; ")
  );
}

async function servePage(request: Request): Promise<Response> {
  if (new URL(request.url).pathname !== "/") return textResponse(404, "not found");
  if (request.method !== "GET" && request.method !== "HEAD") {
    return textResponse(405, "only GET and HEAD are allowed here", { Allow: "GET, HEAD" });
  }
  return new Response(CHAT_PAGE, {
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Content-Security-Policy": await policy(),
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
    },
  });
}

function textResponse(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(message + "\n", {
    status,
    headers: { "Content-Type": "text/plain; charset=utf-8", ...headers },
  });
}

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...digest));
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
