/**
 * permessage-deflate negotiation (RFC 7692 §5, §7.1): reads the client's offers from
 * `Sec-WebSocket-Extensions` and agrees to the first acceptable one.
 * @module
 */

import { isToken } from "../handshake.ts";

/** What was agreed for one connection. */
export interface DeflateParams {
  /** Whether the client keeps its LZ77 window between messages (so we must keep history too). */
  clientContextTakeover: boolean;
  /** The client's window size in bits (8–15): how much history its messages may refer to. */
  clientWindowBits: number;
  /** Whether we keep our compression context between messages (so each socket compresses alone). */
  serverContextTakeover: boolean;
  /** The window size in bits we compress with (8–15). */
  serverWindowBits: number;
  /** The `Sec-WebSocket-Extensions` value of the 101 response. */
  response: string;
}

/** The server's side of the negotiation, from the `perMessageDeflate` option. */
export interface DeflateSettings {
  /**
   * Largest window (8–15 bits) the client may compress with, when it lets the server choose:
   * it bounds the history kept for the client.
   */
  clientMaxWindowBits: number;
  /** Whether to keep our compression context between messages when the client allows it. Default false. */
  serverContextTakeover?: boolean;
  /** Largest window (8–15 bits) we compress with; a client's `server_max_window_bits` lowers it. Default 15. */
  serverMaxWindowBits?: number;
}

/** An extension offer: its name and parameters (a parameter without a value maps to `true`). */
export interface Offer {
  /** The extension's name, lower-cased. */
  name: string;
  /** Its parameters in order, names lower-cased. */
  params: [string, string | true][];
}

/**
 * Agrees to the first acceptable `permessage-deflate` offer in `header`, or returns `null` (the
 * connection then goes on uncompressed). An offer with an unknown, duplicate or invalid parameter
 * is not acceptable. Our context is kept between messages when `settings` asks for it and the
 * client did not offer `server_no_context_takeover`; otherwise the answer says
 * `server_no_context_takeover` (RFC 7692 §7.1.1.1 lets the server choose it) and each message
 * is compressed on its own. The answer names exactly what applies: `server_max_window_bits`
 * only when offered (§7.1.2.1), with the window we compress with, and `client_max_window_bits`
 * whenever the client's window is below 15 bits (§7.1.2.2).
 */
export function negotiateDeflate(header: string | null, settings: DeflateSettings): DeflateParams | null {
  if (header === null) return null;
  const offers = parseExtensions(header);
  if (offers === null) return null;
  for (const offer of offers) {
    if (offer.name !== "permessage-deflate") continue;
    const agreed = acceptOffer(offer, settings);
    if (agreed !== null) return agreed;
  }
  return null;
}

function acceptOffer(offer: Offer, settings: DeflateSettings): DeflateParams | null {
  const seen = new Set<string>();
  let clientContextTakeover = true;
  let serverContextTakeover = settings.serverContextTakeover ?? false;
  let serverBits: number | null = null;
  let clientBits: number | true | null = null;
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return null;
    seen.add(name);
    if (name === "server_no_context_takeover") {
      if (value !== true) return null;
      serverContextTakeover = false;
    } else if (name === "client_no_context_takeover") {
      if (value !== true) return null;
      clientContextTakeover = false;
    } else if (name === "server_max_window_bits") {
      serverBits = windowBits(value);
      if (serverBits === null) return null;
    } else if (name === "client_max_window_bits") {
      if (value === true) clientBits = true;
      else {
        clientBits = windowBits(value);
        if (clientBits === null) return null;
      }
    } else {
      return null;
    }
  }
  let response = "permessage-deflate";
  if (!serverContextTakeover) response += "; server_no_context_takeover";
  if (!clientContextTakeover) response += "; client_no_context_takeover";
  const serverWindowBits = Math.min(serverBits ?? 15, settings.serverMaxWindowBits ?? 15);
  if (serverBits !== null) response += `; server_max_window_bits=${serverWindowBits}`;
  let clientWindowBits = 15;
  if (clientBits !== null) {
    // An offered value is only a hint: a response without the parameter lets the client use a
    // 32 KiB window (RFC 7692 §7.1.2.2), so any smaller window we keep history for is named.
    clientWindowBits = Math.min(clientBits === true ? 15 : clientBits, settings.clientMaxWindowBits);
    if (clientWindowBits < 15) response += `; client_max_window_bits=${clientWindowBits}`;
  }
  return { clientContextTakeover, clientWindowBits, serverContextTakeover, serverWindowBits, response };
}

/** A window-bits value: a decimal 8–15 without leading zeros, or null. */
function windowBits(value: string | true): number | null {
  if (value === true || !/^(8|9|1[0-5])$/.test(value)) return null;
  return Number(value);
}

/**
 * Parses `extension *( ";" param )` lists separated by commas (RFC 6455 §9.1), where a parameter
 * value is a token or a quoted string. Returns `null` when the header is malformed.
 */
export function parseExtensions(header: string): Offer[] | null {
  const offers: Offer[] = [];
  let i = 0;
  const skipSpace = () => {
    while (header[i] === " " || header[i] === "\t") i++;
  };
  const readToken = (): string | null => {
    const start = i;
    while (i < header.length && !' \t,;="'.includes(header[i])) i++;
    const token = header.slice(start, i);
    return isToken(token) ? token : null;
  };
  while (i < header.length) {
    skipSpace();
    if (i >= header.length) break;
    if (header[i] === ",") { // empty list elements are allowed
      i++;
      continue;
    }
    const name = readToken();
    if (name === null) return null;
    const offer: Offer = { name: name.toLowerCase(), params: [] };
    skipSpace();
    while (header[i] === ";") {
      i++;
      skipSpace();
      const param = readToken();
      if (param === null) return null;
      skipSpace();
      let value: string | true = true;
      if (header[i] === "=") {
        i++;
        skipSpace();
        if (header[i] === '"') {
          const end = header.indexOf('"', i + 1);
          if (end < 0) return null;
          value = header.slice(i + 1, end);
          i = end + 1;
          if (!isToken(value)) return null; // a quoted value must still be a token (§9.1)
        } else {
          const token = readToken();
          if (token === null) return null;
          value = token;
        }
        skipSpace();
      }
      offer.params.push([param.toLowerCase(), value]);
    }
    if (i < header.length && header[i] !== ",") return null;
    i++;
    offers.push(offer);
  }
  return offers;
}
