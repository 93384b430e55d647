/**
 * Real-browser testing: headless Chromium driven by playwright-core.
 */

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Where the browser tests expect Chromium (Debian's package). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or `false` when they can. Pass it as a test's `skip`
 * option, so that a missing browser shows as skipped, never as passed.
 */
export const browserSkipReason: string | false = existsSync(CHROMIUM_PATH)
  ? false
  : `chromium not installed at ${CHROMIUM_PATH} (apt-get install chromium)`;

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A Chromium with a fresh profile; `close` shuts it down and removes the profile. */
export interface TestBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Launches headless Chromium with a profile in a new temporary directory; with
 * `ignoreHTTPSErrors` it trusts any certificate (the TLS tests' self-signed one).
 */
export async function launchBrowser({ ignoreHTTPSErrors = false } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "wisp-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      ignoreHTTPSErrors,
      timeout: 20_000,
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  context.setDefaultTimeout(10_000);
  let closed: Promise<void> | null = null;
  return {
    context,
    newPage: () => context.newPage(),
    close: () =>
      closed ??= context.close().catch(() => {}).finally(() =>
        rmSync(profile, { recursive: true, force: true })
      ),
  };
}

/** Runs `body`, failing if it takes longer than `ms` (so that no test hangs the suite). */
export async function withTimeout<T>(ms: number, body: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`test timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([body(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A resource made on first use and disposed of once. Tests set up browsers and servers through
 * it inside the test (bounded by the test's timeout) rather than in `before`, because `bun test`
 * gives hooks 5 s whatever their options say.
 */
export class Lazy<T> {
  #value: Promise<T> | null = null;
  readonly #create: () => Promise<T>;
  readonly #dispose: (value: T) => Promise<void>;

  constructor(create: () => Promise<T>, dispose: (value: T) => Promise<void>) {
    this.#create = create;
    this.#dispose = dispose;
  }

  /** The resource, created on the first call. */
  get(): Promise<T> {
    return this.#value ??= this.#create();
  }

  /** Disposes of the resource if it was created (and forgets it). */
  async dispose(): Promise<void> {
    const value = this.#value;
    this.#value = null;
    if (value === null) return;
    let created: T;
    try {
      created = await value;
    } catch {
      return; // creation failed: nothing to dispose of
    }
    await this.#dispose(created);
  }
}
