/**
 * Close codes (RFC 6455 §7.4), the payload of close frames, and every failure's code and reason.
 * @module
 */

import { CloseCode } from "./api.ts";
import { describeValue } from "./describe_value.ts";
import type { ResolvedValues } from "./options.ts";
import { strictTextDecoder } from "./utf8.ts";

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

/** Builds the payload of a close frame: the code in network order followed by the UTF-8 reason. */
export function encodeClosePayload(code: number, reason: string): Uint8Array {
  const reasonBytes = encoder.encode(reason);
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/**
 * The payload of a close frame a user asks to send (`ws.close(code, reason)`): a `TypeError` for a
 * code that is no number or a reason that is no string, a `RangeError` for a code that may not be
 * sent or a reason over 123 bytes of UTF-8.
 */
export function closeFramePayload(code: number, reason: string): Uint8Array {
  if (typeof code !== "number") {
    throw new TypeError(`close code must be a number, not ${describeValue(code)}`);
  }
  if (typeof reason !== "string") {
    throw new TypeError(`close reason must be a string, not ${describeValue(reason)}`);
  }
  if (!Number.isInteger(code) || !isValidWireCloseCode(code)) {
    throw new RangeError(`close code ${code} may not be sent; use 1000, 1001-1003, 1007-1014 or 3000-4999`);
  }
  const payload = encodeClosePayload(code, reason);
  if (payload.length - 2 > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(`close reason is ${payload.length - 2} bytes of UTF-8; the limit is 123`);
  }
  return payload;
}

/** A close frame's payload once read: its code and reason, or the {@linkcode Failure} it breaks. */
export type ParsedClose = { code: number; reason: string } | { error: number };

/**
 * Reads a received close payload. An empty payload reports 1005. A one-byte payload, a code that
 * may not be sent, or a reason that is not UTF-8 gives the failure it is.
 */
export function parseClosePayload(payload: Uint8Array): ParsedClose {
  if (payload.length === 0) return { code: CloseCode.NoStatus, reason: "" };
  if (payload.length === 1) return { error: Failure.CloseOneByte };
  const code = (payload[0] << 8) | payload[1];
  if (!isValidWireCloseCode(code)) return { error: withDetail(Failure.InvalidCloseCode, code) };
  try {
    return { code, reason: strictTextDecoder.decode(payload.subarray(2)) };
  } catch {
    return { error: Failure.InvalidCloseReason };
  }
}

/**
 * Every rule whose breach makes Wisp fail a connection, by id; {@linkcode FAILURES} gives each its
 * close code and reason. A failure travels as one number (no allocation on the paths that
 * check rules): the id, plus a detail times 256 for the rules whose reason names a value (see
 * {@linkcode withDetail}).
 */
export const Failure = {
  /** RFC 6455 §5.1: a client masks every frame. */
  UnmaskedFrame: 1,
  /** §5.2: RSV bits that no negotiated extension defines. */
  ReservedBits: 2,
  /** RFC 7692 §6.1: RSV1 marks a compressed message on its first frame only. */
  Rsv1OnContinuation: 3,
  /** RFC 7692 §6.1: RSV1 is for data frames. */
  Rsv1OnControl: 4,
  /** §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved; the detail is the opcode. */
  ReservedOpcode: 5,
  /** §5.5: control frames carry at most 125 bytes. */
  ControlTooLong: 6,
  /** §5.5: control frames are not fragmented. */
  FragmentedControl: 7,
  /** §5.4: a continuation frame continues a fragmented message. */
  StrayContinuation: 8,
  /** §5.4: a fragmented message ends before the next one begins. */
  MessageInsideMessage: 9,
  /** §5.2: the most significant bit of a 64-bit length is 0. */
  LengthTopBit: 10,
  /** The message is larger than `maxPayloadLength` (seen at a frame header). */
  MessageTooBig: 11,
  /** §8.1: a text message is UTF-8. */
  InvalidText: 12,
  /** RFC 7692 §6.2: a compressed message is DEFLATE data. */
  InvalidDeflate: 13,
  /** A compressed message inflates to more than `maxPayloadLength`. */
  InflatedTooBig: 14,
  /** §5.5.1: a close payload is empty or holds a 2-byte code. */
  CloseOneByte: 15,
  /** §7.4: a close code that may not be sent; the detail is the code. */
  InvalidCloseCode: 16,
  /** §5.5.1: a close reason is UTF-8. */
  InvalidCloseReason: 17,
  /** The client sends faster than `maxMessagesPerSecond` allows. */
  MessageRate: 18,
  /** A handler threw or rejected. */
  HandlerFailed: 19,
} as const;

/** A {@linkcode Failure} id. */
export type FailureId = (typeof Failure)[keyof typeof Failure];

/** The limits that some failure reasons name (the server's resolved options). */
export type FailureLimits = Readonly<Pick<ResolvedValues, "maxPayloadLength" | "maxMessagesPerSecond">>;

/** What a failure sends. */
export interface FailureRule {
  /** The close code. */
  readonly code: number;
  /** The reason, or how to make it from the failure's detail and the limits. */
  readonly reason: string | ((detail: number, limits: FailureLimits) => string);
}

/** Each failure's close code and reason, in one table; every reason fits in a close frame. */
export const FAILURES: { readonly [Id in FailureId]: FailureRule } = {
  [Failure.UnmaskedFrame]: { code: CloseCode.ProtocolError, reason: "unmasked client frame" },
  [Failure.ReservedBits]: { code: CloseCode.ProtocolError, reason: "reserved bits set without an extension" },
  [Failure.Rsv1OnContinuation]: { code: CloseCode.ProtocolError, reason: "RSV1 on a continuation frame" },
  [Failure.Rsv1OnControl]: { code: CloseCode.ProtocolError, reason: "RSV1 on a control frame" },
  [Failure.ReservedOpcode]: {
    code: CloseCode.ProtocolError,
    reason: (opcode) => `reserved opcode 0x${opcode.toString(16)}`,
  },
  [Failure.ControlTooLong]: { code: CloseCode.ProtocolError, reason: "control frame over 125 bytes" },
  [Failure.FragmentedControl]: { code: CloseCode.ProtocolError, reason: "fragmented control frame" },
  [Failure.StrayContinuation]: {
    code: CloseCode.ProtocolError,
    reason: "continuation frame without a message",
  },
  [Failure.MessageInsideMessage]: {
    code: CloseCode.ProtocolError,
    reason: "new message inside a fragmented message",
  },
  [Failure.LengthTopBit]: { code: CloseCode.ProtocolError, reason: "64-bit length with the top bit set" },
  [Failure.MessageTooBig]: {
    code: CloseCode.MessageTooBig,
    reason: (_, limits) => `message over maxPayloadLength (${limits.maxPayloadLength} bytes)`,
  },
  [Failure.InvalidText]: { code: CloseCode.InvalidPayload, reason: "invalid UTF-8 in text message" },
  [Failure.InvalidDeflate]: { code: CloseCode.InvalidPayload, reason: "invalid DEFLATE data" },
  [Failure.InflatedTooBig]: {
    code: CloseCode.MessageTooBig,
    reason: (_, limits) => `inflated message over maxPayloadLength (${limits.maxPayloadLength} bytes)`,
  },
  [Failure.CloseOneByte]: { code: CloseCode.ProtocolError, reason: "close frame with a 1-byte payload" },
  [Failure.InvalidCloseCode]: {
    code: CloseCode.ProtocolError,
    reason: (code) => `invalid close code ${code}`,
  },
  [Failure.InvalidCloseReason]: { code: CloseCode.InvalidPayload, reason: "invalid UTF-8 in close reason" },
  [Failure.MessageRate]: {
    code: CloseCode.PolicyViolation,
    reason: (_, limits) => `message rate over maxMessagesPerSecond (${limits.maxMessagesPerSecond}/s)`,
  },
  [Failure.HandlerFailed]: { code: CloseCode.InternalError, reason: "handler failed" },
};

/** A failure whose reason names `detail` (an opcode, a close code: at most 16 bits). */
export function withDetail(id: FailureId, detail: number): number {
  return id + detail * 256;
}

function ruleOf(failure: number): FailureRule {
  return FAILURES[(failure & 0xff) as FailureId];
}

/** The close code a failure sends. */
export function failureCode(failure: number): number {
  return ruleOf(failure).code;
}

/** The reason a failure sends, naming the rule that was broken (at most 123 bytes of UTF-8). */
export function failureReason(failure: number, limits: FailureLimits): string {
  const reason = ruleOf(failure).reason;
  return typeof reason === "string" ? reason : reason(failure >>> 8, limits);
}
