// ws 8 on Node: the common Node.js baseline.  Echo on any path; /fanout
// subscribes, and a message sent on /publish goes to every subscriber.  With
// "deflate" it agrees to permessage-deflate: `perMessageDeflate: true`, ws's
// defaults, which compress messages of 1024 bytes or more (`threshold`).
// Usage: node bench/servers/ws_node.mjs PORT [deflate]
import { Sender, WebSocket, WebSocketServer } from "ws";

const port = Number(process.argv[2]);
const perMessageDeflate = process.argv[3] === "deflate";
const subscribers = new Set();

const wss = new WebSocketServer({ host: "127.0.0.1", port, clientTracking: false, perMessageDeflate });
wss.on("listening", () => console.log(`listening on ws://127.0.0.1:${port}`));
wss.on("connection", (ws, request) => {
  const path = new URL(request.url, "http://127.0.0.1").pathname;
  if (path === "/fanout") {
    subscribers.add(ws);
    ws.on("close", () => subscribers.delete(ws));
  } else if (path === "/publish") {
    ws.on("message", publish);
  } else {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});

// Frame the message once and write that same frame to every subscriber, the
// broadcast pattern ws added the public Sender.frame() for (ws PR #1016);
// ws has no public "send a ready frame" call, hence _sender.sendFrame().
function publish(data) {
  const frame = Sender.frame(data, { fin: true, opcode: 2, mask: false, readOnly: false, rsv1: false });
  for (const ws of subscribers) {
    if (ws.readyState === WebSocket.OPEN) ws._sender.sendFrame(frame);
  }
}
