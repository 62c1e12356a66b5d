/**
 * Durations on the command line: whole numbers with units, `90s`, `30m`, `12h`, `14d`, `250ms`,
 * combined as `1h30m`; a bare number is seconds. One parser for `--warn-expiry`, `--interval`
 * and `--jitter`, and the stream flags of `watch`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses `14d`, `12h`, `30m`, `90s`, `250ms`, `1h30m` or `45` (seconds) into milliseconds;
 * `undefined` when it is not one (`2w`, `-1d`, `1.5h`, `d`, ``).
 *
 * @example
 * ```ts
 * parseDuration("14d"); // 1209600000
 * parseDuration("1h30m"); // 5400000
 * parseDuration("2w"); // undefined
 * ```
 */
export function parseDuration(text: string): number | undefined {
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const part = /(\d{1,9})(ms|s|m|h|d)/y;
  let total = 0;
  let at = 0;
  if (text === "") return undefined;
  while (at < text.length) {
    part.lastIndex = at;
    const match = part.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * UNITS[match[2]];
    at = part.lastIndex;
  }
  return total;
}
