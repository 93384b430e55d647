/**
 * A test certificate for `localhost` and 127.0.0.1, made with the system's `openssl` at test
 * time (no key is committed), once per test process: a leaf certificate signed by a test CA, as
 * clients that check the chain (rustls rejects a self-signed leaf used as its own anchor) trust a
 * CA, not the leaf itself.
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The server's certificate and key, and the CA that signed it, as PEM text and as files. */
export interface TestCertificate {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate clients trust. */
  ca: string;
  caFile: string;
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

/** The test certificate (P-256 keys, valid one day, for DNS:localhost and IP:127.0.0.1). */
export function testCertificate(): TestCertificate {
  if (made !== null) return made;
  const dir = mkdtempSync(join(tmpdir(), "wisp-tls-"));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...newKey,
    "-days",
    "1",
    "-subj",
    "/CN=Wisp test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    file("ca-key.pem"),
    "-out",
    file("ca.pem"),
  );
  openssl("req", ...newKey, "-subj", "/CN=localhost", "-keyout", file("key.pem"), "-out", file("leaf.csr"));
  writeFileSync(
    file("leaf.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    file("leaf.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca-key.pem"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    file("leaf.ext"),
    "-out",
    file("cert.pem"),
  );
  if (!existsSync(file("cert.pem"))) throw new Error("openssl made no certificate");
  const read = (name: string) => readFileSync(file(name), "utf8");
  made = {
    cert: read("cert.pem"),
    key: read("key.pem"),
    certFile: file("cert.pem"),
    keyFile: file("key.pem"),
    ca: read("ca.pem"),
    caFile: file("ca.pem"),
  };
  return made;
}
