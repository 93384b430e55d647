/**
 * How options are declared: each one once, in a table, with its default written as a value (the
 * README's text for it is derived from that value) and the check that turns a given value into
 * the resolved one or throws a `TypeError`/`RangeError` naming the option. `serve()` and
 * `redisBackplane()` resolve their options through the same checks.
 * @module
 */

import { describeValue } from "./describe_value.ts";

/**
 * How one option is read: its default as the README shows it (a test holds the README and the
 * doc comments to it), and the check that turns a given value (`undefined` when not given) into
 * the resolved one, or throws a `TypeError`/`RangeError` whose message starts with `label`
 * (such as `option "port"`).
 */
export interface Option<R> {
  /** The default, as the README shows it. */
  readonly shown: string;
  /** Whether `shown` is derived from a default value (its doc comment then says "Default <shown>."). */
  readonly derived: boolean;
  /** The resolved value of `value`; `options` are all the options given, for checks that read others. */
  resolve(value: unknown, label: string, options: Record<string, unknown>): R;
}

/** A table of options, each declared once. */
export type OptionTable = Record<string, Option<unknown>>;

/** The options of `table` as its checks resolve them. */
export type Resolved<Table extends OptionTable> = {
  -readonly [K in keyof Table]: ReturnType<Table[K]["resolve"]>;
};

/** An option whose default is not a value (`shown` describes it) or needs a check of its own. */
export function option<R>(shown: string, resolve: Option<R>["resolve"]): Option<R> {
  return { shown, derived: false, resolve };
}

/** How an integer default reads: a plain count, a size in bytes, or a duration in milliseconds. */
export type Unit = "count" | "bytes" | "ms";

/** An integer option from `min` to `max`; its default `fallback` reads in `unit`, with `note` after it. */
export function integerOption(
  fallback: number,
  min: number,
  max: number,
  unit: Unit = "count",
  note = "",
): Option<number> {
  return {
    shown: showInteger(fallback, unit) + (note === "" ? "" : ` (${note})`),
    derived: true,
    resolve: (value, label) => integer(value, label, fallback, min, max),
  };
}

/** A boolean option. */
export function booleanOption(fallback: boolean): Option<boolean> {
  return {
    shown: `\`${fallback}\``,
    derived: true,
    resolve: (value, label) => boolean(value, label, fallback),
  };
}

/** A non-empty string option. */
export function textOption(fallback: string): Option<string> {
  return {
    shown: `\`"${fallback}"\``,
    derived: true,
    resolve: (value, label) => text(value, label, fallback),
  };
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** `value` as the README writes a default: `` `100` ``, `16 MiB`, `10 000 ms`. */
function showInteger(value: number, unit: Unit): string {
  if (unit === "ms") return `${String(value).replace(/\B(?=(\d{3})+$)/g, " ")} ms`;
  if (unit === "bytes" && value >= MiB && value % MiB === 0) return `${value / MiB} MiB`;
  if (unit === "bytes" && value >= KiB && value % KiB === 0) return `${value / KiB} KiB`;
  return unit === "bytes" ? `${value} bytes` : `\`${value}\``;
}

/**
 * Resolves `given` against `table`: every option of the table checked (its default when not
 * given), and a `TypeError` for a name the table does not have. `subject` names the options in
 * messages: `option "port"` for serve's, `redisBackplane() option "url"` for the backplane's.
 */
export function resolveTable<Table extends OptionTable>(
  table: Table,
  given: unknown,
  subject: (name: string) => string,
  what: string,
): Resolved<Table> {
  if (typeof given !== "object" || given === null) throw new TypeError(`${what} takes an options object`);
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(table, name)) throw new TypeError(`unknown ${subject(name)}`);
  }
  const options = given as Record<string, unknown>;
  const resolved: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    resolved[name] = spec.resolve(options[name], subject(name), options);
  }
  return resolved as Resolved<Table>;
}

/** An integer from `min` to `max`, `fallback` when not given. */
export function integer(value: unknown, label: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`${label} must be an integer, got ${describeValue(value)}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`${label} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** A non-empty string, `fallback` when not given. */
export function text(value: unknown, label: string, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`${label} must be a non-empty string, got ${describeValue(value)}`);
  }
  return value;
}

/** A boolean, `fallback` when not given. */
export function boolean(value: unknown, label: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`${label} must be true or false, got ${describeValue(value)}`);
  }
  return value;
}

/** A URL path (starting with "/"), or null when not given. */
export function path(value: unknown, label: string): string | null {
  if (value === undefined) return null;
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new TypeError(`${label} must be a string starting with "/", got ${describeValue(value)}`);
  }
  return value;
}

/** A function, or null when not given. */
export function optionalFunction<F>(value: unknown, label: string): F | null {
  if (value === undefined) return null;
  if (typeof value !== "function") {
    throw new TypeError(`${label} must be a function, got ${describeValue(value)}`);
  }
  return value as F;
}

/** An object whose keys are all among `names` (else a `TypeError` naming the first that is not). */
export function knownKeys(value: object, names: readonly string[], subject: (name: string) => string): void {
  for (const name of Object.keys(value)) {
    if (!names.includes(name)) throw new TypeError(`unknown ${subject(name)}`);
  }
}
