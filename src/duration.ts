/**
 * Durations on the command line: a whole number and a unit, `90s`, `30m`, `12h`, `14d`.
 *
 * @module
 */

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses `14d`, `12h`, `30m` or `90s` into milliseconds; `undefined` when it is not one.
 *
 * @example
 * ```ts
 * parseDuration("14d"); // 1209600000
 * parseDuration("2w"); // undefined
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,6})([smhd])$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2]] : undefined;
}
