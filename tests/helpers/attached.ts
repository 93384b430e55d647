/** An app's own HTTP server in the attach tests: listening on a free loopback port, and closed for good. */

import type { AddressInfo } from "node:net";
import type { Server as HttpServer } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { RawClient } from "./raw_client.ts";

const decoder = new TextDecoder();

/** Starts `server` listening on a free port of 127.0.0.1 and resolves with the port. */
export function listenOnFreePort(server: HttpServer | HttpsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops `server` listening and ends the HTTP connections it still has (kept-alive ones too), so
 * that a test leaves no socket behind; upgraded sockets are the WebSocket server's to close.
 */
export function closeHttpServer(server: HttpServer | HttpsServer): Promise<void> {
  if (!server.listening) return Promise.resolve();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/** Reads the next frame a client gets, as text. */
export async function readText(client: RawClient, ms = 3000): Promise<string> {
  return decoder.decode((await client.readFrame(ms)).payload);
}

/** The status and body of a plain `GET path` on a kept-alive raw connection. */
export async function getOn(client: RawClient, path: string): Promise<[number, string]> {
  client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const response = await client.readResponse(3000);
  return [response.status, response.body];
}
