/**
 * The chat demo's page: one self-contained HTML document (inline CSS and script, no external
 * assets). Everything users typed is put on the page with `textContent`, never parsed as HTML.
 *
 * After an abnormal close the page reconnects with backoff and jitter and joins again with the
 * position of the last message it showed, so that the messages sent meanwhile appear once each,
 * in order; when the server no longer has them all, a `gap` notice says so.
 *
 * Elements tests may rely on: `#name`, `#join`, `#text`, `#send`, `#messages` (one `li` per
 * entry, with `data-kind` = `message`, `join`, `leave`, `welcome`, `gap`, `error` or `info`),
 * `#online` (`data-count`, the number of joined users; hidden until this page has joined), and
 * `#status` (`data-state` = `connecting`, `open` or `closed`; `data-protocol`, the subprotocol the
 * page's WebSocket agreed on; while closed, `data-retry`, the milliseconds until it tries again).
 * @module
 */

/** The page's style sheet (the content of its `<style>` element). */
export const PAGE_STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #6b7280; --line: #e3e6eb;
  --accent: #4f46e5; --accent-text: #fff; --mine: #eef2ff; --error: #b42318; --ok: #067647;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #12151c; --panel: #1a1f29; --text: #e6e8ee; --muted: #9aa3b2; --line: #2a3140;
    --accent: #818cf8; --accent-text: #0b0d12; --mine: #232a45; --error: #f97066; --ok: #47cd89;
  }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body {
  display: flex; flex-direction: column; max-width: 760px; margin: 0 auto;
  background: var(--bg); color: var(--text);
}
header {
  display: flex; align-items: center; gap: 12px; padding: 14px 16px;
  border-bottom: 1px solid var(--line);
}
h1 { font-size: 18px; margin: 0 auto 0 0; letter-spacing: .2px; }
.pill {
  font-size: 13px; padding: 2px 10px; border-radius: 999px;
  border: 1px solid var(--line); background: var(--panel); color: var(--muted); white-space: nowrap;
}
#status::before {
  content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px;
  border-radius: 50%; background: var(--muted); vertical-align: 1px;
}
#status[data-state="open"]::before { background: var(--ok); }
#status[data-state="closed"]::before { background: var(--error); }
#messages {
  flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 12px 16px;
  display: flex; flex-direction: column; gap: 6px;
}
#messages li { max-width: 100%; overflow-wrap: anywhere; }
li[data-kind="message"] {
  align-self: flex-start; max-width: 85%; padding: 6px 10px; border-radius: 10px;
  background: var(--panel); border: 1px solid var(--line);
}
li[data-kind="message"][data-mine] { align-self: flex-end; background: var(--mine); }
.meta { display: flex; gap: 8px; align-items: baseline; font-size: 12px; color: var(--muted); }
.sender { font-weight: 600; color: var(--text); }
.body { margin: 2px 0 0; white-space: pre-wrap; }
li.notice { align-self: center; font-size: 13px; color: var(--muted); text-align: center; }
li[data-kind="error"] { color: var(--error); }
form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); }
form[hidden] { display: none; }
input {
  flex: 1; min-width: 0; font: inherit; padding: 8px 10px; border-radius: 8px;
  border: 1px solid var(--line); background: var(--panel); color: var(--text);
}
input:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
button {
  font: inherit; font-weight: 600; padding: 8px 16px; border: 0; border-radius: 8px;
  background: var(--accent); color: var(--accent-text); cursor: pointer;
}
button:disabled { opacity: .5; cursor: default; }
`;

/** The page's script (the content of its `<script>` element). */
export const PAGE_SCRIPT = `
"use strict";
(() => {
  const MIN_DELAY = 500;
  const MAX_DELAY = 10000;
  const MAX_ENTRIES = 500;
  const byId = (id) => document.getElementById(id);
  const status = byId("status");
  const online = byId("online");
  const messages = byId("messages");
  const joinForm = byId("join-form");
  const sendForm = byId("send-form");
  const nameInput = byId("name");
  const joinButton = byId("join");
  const textInput = byId("text");
  const sendButton = byId("send");

  let socket = null;
  let name = ""; // the name the server accepted; re-sent after a reconnection
  let joined = false;
  // The history position ({ epoch, offset }) of the last message shown, or of the welcome if later:
  // re-sent as "since" after a reconnection.
  let position = null;
  // The positions ("epoch offset") of the messages on the page: one that comes again is ignored, a
  // safety net (the server sends each once). Not an order: messages of several processes may
  // come out of their offsets' order.
  const shown = new Set();
  let delay = MIN_DELAY;
  let retryTimer = 0;

  function setStatus(state, label) {
    status.dataset.state = state;
    status.textContent = label;
  }

  /** Shows how many joined; hidden while that is unknown (not joined, or offline). */
  function setOnline(count) {
    online.hidden = count === null;
    online.dataset.count = count === null ? "" : String(count);
    online.textContent = count === null ? "" : count + " online";
  }

  function updateControls() {
    const open = socket !== null && socket.readyState === WebSocket.OPEN;
    joinForm.hidden = name !== "";
    sendForm.hidden = name === "";
    joinButton.disabled = !open;
    sendButton.disabled = !(open && joined);
  }

  function formatTime(iso) {
    const date = new Date(iso);
    return isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /** Appends an entry (of a message at position \`at\`, if any); text goes in with textContent. */
  function add(kind, build, at) {
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    const item = document.createElement("li");
    item.dataset.kind = kind;
    if (at) {
      item.dataset.at = at;
      shown.add(at);
    }
    build(item);
    messages.append(item);
    while (messages.childElementCount > MAX_ENTRIES) {
      shown.delete(messages.firstElementChild.dataset.at);
      messages.firstElementChild.remove();
    }
    if (atBottom) messages.scrollTop = messages.scrollHeight;
    return item;
  }

  function notice(kind, text, iso, at) {
    add(kind, (item) => {
      item.className = "notice";
      item.textContent = text;
      if (iso) item.title = new Date(iso).toLocaleString();
    }, at);
  }

  function chatMessage(message, at) {
    add("message", (item) => {
      if (name !== "" && message.name === name) item.dataset.mine = "";
      const meta = document.createElement("div");
      meta.className = "meta";
      const sender = document.createElement("span");
      sender.className = "sender";
      sender.textContent = message.name;
      const time = document.createElement("time");
      time.dateTime = message.time;
      time.title = new Date(message.time).toLocaleString();
      time.textContent = formatTime(message.time);
      meta.append(sender, time);
      const body = document.createElement("p");
      body.className = "body";
      body.textContent = message.text;
      item.append(meta, body);
    }, at);
  }

  function receive(message) {
    // Published messages (and the welcome) carry their position; errors do not.
    let at = "";
    if (typeof message.epoch === "string" && typeof message.offset === "string") {
      at = message.epoch + " " + message.offset;
      if (message.type !== "welcome" && shown.has(at)) return;
      position = { epoch: message.epoch, offset: message.offset };
    }
    switch (message.type) {
      case "welcome": {
        const again = name !== "";
        name = message.name;
        joined = true;
        setOnline(message.online);
        notice("welcome", (again ? "Reconnected as " : "You joined as ") + name, message.time);
        if (again && message.recovered === false) {
          notice("gap", "Some messages sent while you were away may be missing.");
        }
        updateControls();
        textInput.focus();
        break;
      }
      case "join":
        setOnline(message.online);
        notice("join", message.name + " joined", message.time, at);
        break;
      case "leave":
        setOnline(message.online);
        notice("leave", message.name + " left", message.time, at);
        break;
      case "message":
        chatMessage(message, at);
        break;
      case "error":
        notice("error", message.message);
        break;
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    delete status.dataset.retry;
    setStatus("connecting", "Connecting…");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(scheme + "://" + location.host + "/chat", "chat");
    socket = ws;
    ws.onopen = () => {
      delay = MIN_DELAY;
      status.dataset.protocol = ws.protocol;
      setStatus("open", "Connected");
      if (name !== "") {
        const join = position === null ? { type: "join", name } : { type: "join", name, since: position };
        ws.send(JSON.stringify(join));
      }
      updateControls();
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message !== null && typeof message === "object") receive(message);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      joined = false;
      // Between half the delay and the delay, so that a restart does not bring every page back at once.
      const wait = Math.round(delay / 2 + Math.random() * (delay / 2));
      delay = Math.min(delay * 2, MAX_DELAY);
      status.dataset.retry = String(wait);
      setStatus("closed", "Offline, reconnecting in " + (wait / 1000).toFixed(1) + " s");
      setOnline(null);
      updateControls();
      retryTimer = setTimeout(connect, wait);
    };
  }

  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = nameInput.value.trim();
    if (wanted === "" || socket === null || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "join", name: wanted }));
  });

  sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (text === "" || !joined || socket === null || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "message", text }));
    textInput.value = "";
  });

  setOnline(null);
  updateControls();
  notice("info", "Pick a name below to join the chat.");
  connect();
  nameInput.focus();
})();
`;

/** The whole page, as served at `/`. */
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wisp chat</title>
<link rel="icon" href="data:,">
<style>${PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>Wisp chat</h1>
  <span id="online" class="pill" data-count="" hidden></span>
  <span id="status" class="pill" data-state="connecting" data-protocol="">Connecting…</span>
</header>
<ol id="messages" aria-live="polite"></ol>
<form id="join-form" autocomplete="off">
  <input id="name" maxlength="32" placeholder="Pick a name to join" aria-label="Your name" required>
  <button id="join" type="submit" disabled>Join</button>
</form>
<form id="send-form" autocomplete="off" hidden>
  <input id="text" maxlength="2000" placeholder="Write a message" aria-label="Message">
  <button id="send" type="submit" disabled>Send</button>
</form>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
