/** Starting and stopping servers in tests. */

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

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
