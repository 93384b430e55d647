/**
 * The upgrade decision, as pure functions of the request head and the server's options: whether
 * an upgrade request may go on (RFC 6455 §4.2.1's checks, the `path` and `origins` policy, a
 * well-formed subprotocol offer), and what the 101 agrees on (subprotocol, permessage-deflate,
 * extra headers). Both ways of upgrading (Wisp's own and `server.upgrade` from `fetch`) use them.
 * @module
 */

import { negotiateDeflate } from "../deflate/negotiate.ts";
import type { DeflateParams } from "../deflate/negotiate.ts";
import { offeredProtocols, type RequestHead, validateUpgrade } from "../handshake.ts";
import type { ProtocolSelector, ResolvedValues } from "../options.ts";
import { requestUrl } from "./request.ts";
import type { HttpError } from "./response.ts";

/** The options the decision reads: the server's resolved options, by reference. */
export type UpgradeSettings = Readonly<
  Pick<ResolvedValues, "path" | "origins" | "hostname" | "perMessageDeflate" | "protocols">
>;

/** An upgrade request that passed every check. */
export interface UpgradeCandidate {
  /** Its `Sec-WebSocket-Key`. */
  key: string;
  /** Its URL, with the `ws:` (or `wss:`) scheme. */
  url: URL;
  /** The subprotocols offered, in the client's order. */
  offered: string[];
}

/** What the 101 agrees on. */
export interface Agreement {
  /** The subprotocol, or `""`. */
  protocol: string;
  /** The permessage-deflate parameters, or null. */
  deflate: DeflateParams | null;
}

/**
 * Checks an upgrade request that came over TLS when `secure`: 400 for a malformed one (426 for
 * another WebSocket version), 404 off `path`, 403 for a foreign `Origin` that `origins` does not
 * allow.
 */
export function checkUpgrade(
  head: RequestHead,
  settings: UpgradeSettings,
  secure: boolean,
): UpgradeCandidate | HttpError {
  const key = validateUpgrade(head);
  if (typeof key !== "string") return key;
  const url = requestUrl(head, secure ? "wss" : "ws", settings.hostname);
  if (!(url instanceof URL)) return url;
  if (settings.path !== null && url.pathname !== settings.path) {
    return { status: 404, message: "no WebSocket endpoint at this path" };
  }
  const origin = head.headers.get("origin");
  if (
    origin !== undefined && settings.origins !== null && !settings.origins.has(origin) &&
    !isSameOrigin(origin, head.headers.get("host"))
  ) {
    return {
      status: 403,
      message:
        `origin ${origin} may not open WebSockets here; allow it with the "origins" option (a list, or "*")`,
    };
  }
  const offered = offeredProtocols(head.headers);
  if (offered === null) return { status: 400, message: "malformed Sec-WebSocket-Protocol" };
  return { key, url, offered };
}

/**
 * Agrees on a subprotocol (`chosen` when the app named one, else the `protocols` option's pick,
 * asked only when some are offered; `request` makes the `Request` a selector is given) and on
 * permessage-deflate. A `chosen` protocol the client did not offer is a `TypeError`: the app's
 * mistake, answered 500.
 */
export function agree(
  head: RequestHead,
  candidate: UpgradeCandidate,
  chosen: string | undefined,
  request: () => Request,
  settings: UpgradeSettings,
): Agreement {
  const offered = candidate.offered;
  const protocol = chosen ?? chooseProtocol(offered, settings.protocols, request);
  if (protocol !== "" && !offered.includes(protocol)) {
    throw new TypeError(
      `subprotocol "${protocol}" was chosen but the client offered ${JSON.stringify(offered)}`,
    );
  }
  const deflate = settings.perMessageDeflate === null ? null : negotiateDeflate(
    head.headers.get("sec-websocket-extensions") ?? null,
    settings.perMessageDeflate,
  );
  return { protocol, deflate };
}

/** The `protocols` option's pick from the client's offer, or `""`. */
function chooseProtocol(
  offered: string[],
  protocols: readonly string[] | ProtocolSelector,
  request: () => Request,
): string {
  // Without an offer there is nothing to choose from: a selector is not asked (nor a Request made).
  if (offered.length === 0) return "";
  const chosen = typeof protocols === "function"
    ? protocols(offered, request())
    : protocols.find((protocol) => offered.includes(protocol));
  return chosen ?? "";
}

/**
 * Whether a browser's `Origin` names the host the request was sent to (`Host`), ports compared
 * after defaults: then the page comes from this server. The scheme is not compared, so a page
 * served over https through a TLS proxy in front of the server still counts.
 */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const page = new URL(origin);
    return page.host === new URL(`${page.protocol}//${host}`).host;
  } catch {
    return false; // "null" (sandboxed pages, file:) or a malformed value
  }
}
