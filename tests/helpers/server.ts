/** Starting and stopping servers in tests. */

import { createServer } from "node:net";
import { serve, type ServeOptions, type Server } from "../../mod.ts";

/** An echo server on a free port, with extra options merged in. */
export function echoServer<T = undefined>(options: ServeOptions<T> = {}): Server {
  return serve<T>({
    port: 0,
    websocket: {
      message(ws, data) {
        ws.send(data);
      },
    },
    ...options,
  });
}

/**
 * Most bytes the kernel may take from a writer whose peer does not read (the writer's send buffer
 * and the reader's receive buffer): about 3 MiB over loopback on this machine, with room to spare.
 */
export const KERNEL_BOUND = 16 * 1024 * 1024;

/** The largest read any adapter makes (Deno's read buffer grows to 256 KiB): what a pause may catch. */
export const MAX_READ = 256 * 1024;

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until it holds; throws naming `what` after `ms`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/**
 * Waits until `server` holds nothing for any connection: no WebSocket open, none in its HTTP
 * phase, and no bytes held against `httpBufferBudget`; throws naming what is left after `ms`.
 */
export async function untilNothingHeld(server: Server, ms = 5000): Promise<void> {
  let left = "";
  await until(
    () => {
      const { open, http, httpBytes } = server.stats().connections;
      left = `${open} WebSockets, ${http} HTTP connections, ${httpBytes} bytes`;
      return open === 0 && http === 0 && httpBytes === 0;
    },
    "the server to release every connection",
    ms,
  ).catch((error) => {
    throw new Error(`${error.message} (it holds ${left})`);
  });
}

/** A port no one listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
