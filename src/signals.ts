/**
 * Signal names a map line may use, normalized to the form `docker|podman kill --signal`
 * and `kill -s` both accept (`HUP`, not `SIGHUP`).
 *
 * @module
 */

/** Signals that make sense to send to a server to reload or stop it. */
export const SIGNALS: readonly string[] = [
  "HUP",
  "INT",
  "QUIT",
  "USR1",
  "USR2",
  "TERM",
  "WINCH",
  "ALRM",
  "CONT",
  "PWR",
];

/**
 * Returns the normalized signal name (`HUP` for `hup`, `SIGHUP` or `HUP`), or `undefined`
 * when the value is not a known signal.
 */
export function normalizeSignal(value: string): string | undefined {
  const name = value.toUpperCase().replace(/^SIG/, "");
  return SIGNALS.includes(name) ? name : undefined;
}
