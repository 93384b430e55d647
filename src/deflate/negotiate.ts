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
  /** The window size in bits we compress with (8–15). */
  serverWindowBits: number;
  /** The `Sec-WebSocket-Extensions` value of the 101 response. */
  response: string;
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
 * is not acceptable. Wisp always answers `server_no_context_takeover` (RFC 7692 §7.1.1.1 lets the
 * server choose it): each message is compressed on its own, so no compressor state is kept per
 * connection. `clientMaxWindowBits` caps the client's window, which bounds the history kept for it.
 */
export function negotiateDeflate(header: string | null, clientMaxWindowBits: number): DeflateParams | null {
  if (header === null) return null;
  const offers = parseExtensions(header);
  if (offers === null) return null;
  for (const offer of offers) {
    if (offer.name !== "permessage-deflate") continue;
    const agreed = acceptOffer(offer, clientMaxWindowBits);
    if (agreed !== null) return agreed;
  }
  return null;
}

function acceptOffer(offer: Offer, clientMaxWindowBits: number): DeflateParams | null {
  const seen = new Set<string>();
  let clientContextTakeover = true;
  let serverWindowBits = 15;
  let serverBitsOffered = false;
  let clientBits: number | true | null = null;
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return null;
    seen.add(name);
    if (name === "server_no_context_takeover") {
      if (value !== true) return null;
    } else if (name === "client_no_context_takeover") {
      if (value !== true) return null;
      clientContextTakeover = false;
    } else if (name === "server_max_window_bits") {
      const bits = windowBits(value);
      if (bits === null) return null;
      serverWindowBits = bits;
      serverBitsOffered = true;
    } else if (name === "client_max_window_bits") {
      if (value === true) clientBits = true;
      else {
        const bits = windowBits(value);
        if (bits === null) return null;
        clientBits = bits;
      }
    } else {
      return null;
    }
  }
  let response = "permessage-deflate; server_no_context_takeover";
  if (!clientContextTakeover) response += "; client_no_context_takeover";
  if (serverBitsOffered) response += `; server_max_window_bits=${serverWindowBits}`;
  let clientWindowBits = 15;
  if (clientBits !== null) {
    // An offered value is only a hint: a response without the parameter lets the client use a
    // 32 KiB window (RFC 7692 §7.1.2.2), so any smaller window we keep history for is named.
    clientWindowBits = Math.min(clientBits === true ? 15 : clientBits, clientMaxWindowBits);
    if (clientWindowBits < 15) response += `; client_max_window_bits=${clientWindowBits}`;
  }
  return { clientContextTakeover, clientWindowBits, serverWindowBits, response };
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
