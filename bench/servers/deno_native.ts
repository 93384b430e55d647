// Deno's own WebSocket server (Deno.serve + Deno.upgradeWebSocket): the
// baseline for Wisp on Deno.  Echo on any path; /fanout subscribes, and a
// message sent on /publish goes to every subscriber.
// Usage: deno run -A bench/servers/deno_native.ts PORT
const port = Number(Deno.args[0]);
const subscribers = new Set<WebSocket>();

Deno.serve({ port, hostname: "127.0.0.1" }, (request) => {
  const path = new URL(request.url).pathname;
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer"; // Blobs would add a copy and a promise per message
  if (path === "/fanout") {
    socket.onopen = () => subscribers.add(socket);
    socket.onclose = () => subscribers.delete(socket);
  } else if (path === "/publish") {
    // Deno has no pub/sub, so fan out the way an application would: a loop.
    socket.onmessage = (event) => {
      for (const subscriber of subscribers) subscriber.send(event.data);
    };
  } else {
    socket.onmessage = (event) => socket.send(event.data);
  }
  return response;
});
