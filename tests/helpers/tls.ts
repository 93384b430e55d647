/**
 * A test certificate for `localhost` and 127.0.0.1, made with the system's `openssl` at test
 * time (no key is committed), once per test process.
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A self-signed certificate and its key, as PEM text and as files. */
export interface TestCertificate {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

/** Why the TLS tests cannot run here, or `false` when they can (pass it as a test's `skip`). */
export const tlsSkipReason: string | false = hasOpenssl() ? false : "openssl is not installed";

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

let made: TestCertificate | null = null;

/** The test certificate (a P-256 key, valid one day, for DNS:localhost and IP:127.0.0.1). */
export function testCertificate(): TestCertificate {
  if (made !== null) return made;
  const dir = mkdtempSync(join(tmpdir(), "wisp-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ], { stdio: "ignore" });
  if (!existsSync(certFile)) throw new Error("openssl made no certificate");
  made = { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8"), certFile, keyFile };
  return made;
}
