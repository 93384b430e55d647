/**
 * Close codes (RFC 6455 §7.4) and the payload of close frames.
 * @module
 */

/** Close codes Wisp sends or reports. */
export const CloseCode = {
  /** The purpose of the connection has been fulfilled. */
  Normal: 1000,
  /** The server is going away (shutting down). */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** A data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** Reported (never sent) when a close frame carried no code. */
  NoStatus: 1005,
  /** Reported (never sent) when the connection dropped without a close frame. */
  Abnormal: 1006,
  /** A text message or close reason was not valid UTF-8. */
  InvalidPayload: 1007,
  /** A message violated a policy of the endpoint. */
  PolicyViolation: 1008,
  /** A message exceeded the size limit. */
  MessageTooBig: 1009,
  /** The server hit an unexpected condition (a handler threw). */
  InternalError: 1011,
} as const;

/**
 * Whether `code` may appear in a close frame on the wire: 1000–1003, 1007–1014 or 3000–4999.
 * 1004 is reserved; 1005, 1006 and 1015 are for reporting only.
 */
export function isValidWireCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** The longest close reason: a control payload holds 125 bytes, two of them for the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/** Builds the payload of a close frame: the code in network order followed by the UTF-8 reason. */
export function encodeClosePayload(code: number, reason: string): Uint8Array {
  const reasonBytes = encoder.encode(reason);
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/** A close frame's payload once read: its code and reason, or the close code to fail with. */
export type ParsedClose = { code: number; reason: string } | { error: number };

/**
 * Reads a received close payload. An empty payload reports 1005. A one-byte payload or a code
 * that may not be sent fails with 1002; a reason that is not UTF-8 fails with 1007.
 */
export function parseClosePayload(payload: Uint8Array): ParsedClose {
  if (payload.length === 0) return { code: CloseCode.NoStatus, reason: "" };
  if (payload.length === 1) return { error: CloseCode.ProtocolError };
  const code = (payload[0] << 8) | payload[1];
  if (!isValidWireCloseCode(code)) return { error: CloseCode.ProtocolError };
  try {
    return { code, reason: fatalDecoder.decode(payload.subarray(2)) };
  } catch {
    return { error: CloseCode.InvalidPayload };
  }
}
