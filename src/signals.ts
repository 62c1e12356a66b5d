/**
 * Signal names a map line may use, normalized to the form `docker|podman kill --signal`
 * and `kill -s` both accept (`HUP`, not `SIGHUP`).
 *
 * @module
 */

/**
 * Linux's standard signals, as `kill -l` and `docker|podman kill --signal` name them. The
 * reloading ones come first, as error messages list them in this order.
 */
export const SIGNALS: readonly string[] = [
  "HUP",
  "USR1",
  "USR2",
  "TERM",
  "INT",
  "QUIT",
  "WINCH",
  "ALRM",
  "CONT",
  "PWR",
  "KILL",
  "STOP",
  "TSTP",
  "TTIN",
  "TTOU",
  "ABRT",
  "BUS",
  "CHLD",
  "FPE",
  "ILL",
  "IO",
  "PIPE",
  "PROF",
  "SEGV",
  "STKFLT",
  "SYS",
  "TRAP",
  "URG",
  "VTALRM",
  "XCPU",
  "XFSZ",
];

/**
 * The signals a recipe may send or name: the ones servers use to reload or stop. A map line may
 * send any signal; a recipe that would SEGV or STOP its server is a mistake.
 */
export const RELOAD_SIGNALS: readonly string[] = SIGNALS.slice(0, SIGNALS.indexOf("PWR") + 1);

/**
 * Signals that stop a process rather than reload it. A reload never sends them unless the run
 * is given `--allow-stop-signals`: a map line (or a recipe) sending one takes its server down on
 * every secret change.
 */
export const STOP_SIGNALS: readonly string[] = ["KILL", "STOP", "TERM", "INT", "QUIT"];

/**
 * Returns the normalized signal name (`HUP` for `hup`, `SIGHUP` or `HUP`), or `undefined`
 * when the value is not a known signal.
 */
export function normalizeSignal(value: string): string | undefined {
  const name = value.toUpperCase().replace(/^SIG/, "");
  return SIGNALS.includes(name) ? name : undefined;
}
