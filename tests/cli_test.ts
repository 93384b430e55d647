/**
 * The command line: flag parsing, and `mod.ts` run as a user runs it.
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseArgs } from "../src/cli.ts";
import { frame, RawClient } from "./helpers/raw_client.ts";
import { runCli, startCli } from "./helpers/cli.ts";
import { serve } from "../mod.ts";

const CLI_TIMEOUT = { timeout: 30_000 };

describe("parseArgs", () => {
  const defaults = {
    port: 3368,
    hostname: "127.0.0.1",
    echo: false,
    cert: null,
    key: null,
    workers: 0,
    redis: null,
    redisMode: "classic",
    metrics: null,
    help: false,
  };

  it("defaults to the chat server on 127.0.0.1:3368", () => {
    assert.deepEqual(parseArgs([]), defaults);
  });

  it("reads --port, --hostname, --echo and --help, with a space or an equals sign", () => {
    assert.deepEqual(parseArgs(["--port", "4000", "--hostname=0.0.0.0", "--echo"]), {
      ...defaults,
      port: 4000,
      hostname: "0.0.0.0",
      echo: true,
    });
    assert.equal(parseArgs(["--port=0"]).port, 0);
    assert.equal(parseArgs(["--help"]).help, true);
    assert.equal(parseArgs(["-h"]).help, true);
  });

  it("refuses unknown flags, bad ports and missing values with a TypeError that says which", () => {
    assert.throws(() => parseArgs(["--verbose"]), {
      name: "TypeError",
      message: /unknown argument "--verbose"/,
    });
    assert.throws(() => parseArgs(["--echo=yes"]), {
      name: "TypeError",
      message: /unknown argument "--echo=yes"/,
    });
    assert.throws(() => parseArgs(["--port", "70000"]), {
      name: "TypeError",
      message: /--port must be 0-65535/,
    });
    assert.throws(() => parseArgs(["--port", "-1"]), {
      name: "TypeError",
      message: /--port must be 0-65535/,
    });
    assert.throws(() => parseArgs(["--port"]), { name: "TypeError", message: /--port needs a value/ });
  });

  it("reads --cert, --key, --workers and --redis, refusing a cert without a key and bad worker counts", () => {
    const parsed = parseArgs(["--cert", "c.pem", "--key=k.pem", "--workers", "3", "--redis", "redis://r:1"]);
    assert.deepEqual([parsed.cert, parsed.key, parsed.workers, parsed.redis], [
      "c.pem",
      "k.pem",
      3,
      "redis://r:1",
    ]);
    assert.ok(parseArgs(["--echo", "--workers", "auto"]).workers >= 1);
    assert.throws(() => parseArgs(["--cert", "c.pem"]), {
      name: "TypeError",
      message: /--cert and --key go together/,
    });
    assert.throws(() => parseArgs(["--echo", "--workers", "0"]), {
      name: "TypeError",
      message: /--workers must be/,
    });
    // The chat demo on several workers needs no Redis: the supervisor relays its topics.
    assert.equal(parseArgs(["--workers", "2"]).workers, 2);
  });

  it("reads --redis-mode classic or streams, which needs --redis", () => {
    assert.equal(parseArgs(["--redis", "redis://r:1"]).redisMode, "classic");
    assert.equal(parseArgs(["--redis", "redis://r:1", "--redis-mode", "streams"]).redisMode, "streams");
    assert.equal(parseArgs(["--redis-mode=classic", "--redis", "redis://r:1"]).redisMode, "classic");
    assert.throws(() => parseArgs(["--redis", "redis://r:1", "--redis-mode", "kafka"]), {
      name: "TypeError",
      message: /--redis-mode must be classic or streams, got "kafka"/,
    });
    assert.throws(() => parseArgs(["--redis-mode", "streams"]), {
      name: "TypeError",
      message: /--redis-mode needs --redis URL/,
    });
  });

  it("reads --metrics as /metrics, or the path after an equals sign, which must start with /", () => {
    assert.equal(parseArgs(["--metrics"]).metrics, "/metrics");
    assert.equal(parseArgs(["--metrics=/internal/metrics"]).metrics, "/internal/metrics");
    assert.throws(() => parseArgs(["--metrics=metrics"]), {
      name: "TypeError",
      message: /--metrics must be a path starting with "\/"/,
    });
  });
});

describe("mod.ts on the command line", () => {
  it("prints the usage and exits with 0 for --help", CLI_TIMEOUT, async () => {
    const { code, output } = await runCli(["--help"]);
    assert.equal(code, 0, output);
    assert.match(output, /Usage: wisp/);
    assert.match(output, /--echo/);
  });

  it("says what is wrong, prints the usage and exits with 2 for an unknown flag", CLI_TIMEOUT, async () => {
    const { code, output } = await runCli(["--nope"]);
    assert.equal(code, 2, output);
    assert.match(output, /unknown argument "--nope"/);
    assert.match(output, /Usage: wisp/);
  });

  it("exits with 1 and a clear message when the port is taken", CLI_TIMEOUT, async () => {
    const blocker = serve({ port: 0 });
    try {
      const { code, output } = await runCli(["--echo", "--port", String(blocker.port)]);
      assert.equal(code, 1, output);
      assert.match(output, new RegExp(`port ${blocker.port} on 127.0.0.1 is already in use`));
    } finally {
      await blocker.close();
    }
  });

  it("--echo prints its URL and echoes on any path", CLI_TIMEOUT, async () => {
    const server = await startCli(["--echo", "--port", "0"]);
    try {
      assert.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
      const client = await RawClient.open(server.port, "/any/path?x=1");
      client.write(frame(0x1, "héllo"));
      const echoed = await client.readFrame();
      assert.equal(new TextDecoder().decode(echoed.payload), "héllo");
      client.destroy();
    } finally {
      await server.stop();
    }
  });
});
