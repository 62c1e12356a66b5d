/**
 * What systemd says about the `oci-secretsync.timer`: whether it is enabled and active, and
 * when it fires next. For `status` and `doctor`; both must work on hosts without systemd, so
 * every failure here is an answer ("systemctl is not available"), never an exception.
 *
 * Requires `--allow-run` for `systemctl`.
 *
 * @module
 */
import { hostEnv, runCommand } from "./host/command.ts";

/** The timer `secretsync install` enables. */
export const TIMER_UNIT = "oci-secretsync.timer";

/** What `systemctl show` told about the timer. */
export type TimerInfo =
  | {
    available: true;
    /** `UnitFileState`: `enabled`, `disabled`, … ; empty when the unit is not installed. */
    unitFileState: string;
    /** `ActiveState`: `active`, `inactive`, … */
    activeState: string;
    /** `LoadState`: `loaded`, `not-found`, … */
    loadState: string;
    /** When it fires next, if systemd knows and the time could be read. */
    nextElapse?: Date;
    /** The raw `NextElapseUSecRealtime` text, for display when it could not be read. */
    nextElapseText: string;
  }
  | {
    available: false;
    /** Why nothing could be asked: no systemctl, no systemd, a timeout. */
    reason: string;
  };

/** Options of {@linkcode readTimer}. */
export interface ReadTimerOptions {
  /** @default {TIMER_UNIT} */
  unit?: string;
  /** Deadline for `systemctl`. @default {3000} */
  timeoutMs?: number;
  /** The program to run. @default {"systemctl"} */
  bin?: string;
}

/**
 * Asks systemd about the timer with `systemctl show`, bounded by a deadline. Never throws.
 *
 * @example
 * ```ts
 * import { readTimer } from "./timer.ts";
 *
 * const timer = await readTimer();
 * if (timer.available && timer.nextElapse) console.log(timer.nextElapse.toISOString());
 * ```
 */
export async function readTimer(options: ReadTimerOptions = {}): Promise<TimerInfo> {
  const unit = options.unit ?? TIMER_UNIT;
  const bin = options.bin ?? "systemctl";
  try {
    const result = await runCommand(bin, [
      "show",
      "--property=LoadState,UnitFileState,ActiveState,NextElapseUSecRealtime",
      "--",
      unit,
    ], { env: hostEnv(), timeoutMs: options.timeoutMs ?? 3_000 });
    if (result.code !== 0) {
      const why = result.stderr.trim().split("\n").pop()?.slice(0, 200) ||
        `exit code ${result.code}`;
      return { available: false, reason: `systemctl show failed: ${why}` };
    }
    return parseTimerShow(result.stdout);
  } catch (error) {
    return { available: false, reason: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Reads `systemctl show` output (`Key=value` lines). `NextElapseUSecRealtime` comes as
 * `Wed 2026-12-02 12:00:00 UTC` (or `@1764676800` with `--timestamp=unix`); empty or `n/a`
 * when the timer is not scheduled.
 *
 * @example
 * ```ts
 * import { parseTimerShow } from "./timer.ts";
 *
 * parseTimerShow("LoadState=loaded\nUnitFileState=enabled\nActiveState=active\nNextElapseUSecRealtime=Wed 2026-12-02 12:00:00 UTC\n");
 * ```
 */
export function parseTimerShow(stdout: string): TimerInfo {
  const props = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const nextElapseText = props.get("NextElapseUSecRealtime") ?? "";
  return {
    available: true,
    loadState: props.get("LoadState") ?? "",
    unitFileState: props.get("UnitFileState") ?? "",
    activeState: props.get("ActiveState") ?? "",
    nextElapse: parseSystemdTime(nextElapseText),
    nextElapseText,
  };
}

/** A systemd timestamp (`Wed 2026-12-02 12:00:00 UTC`, `@1764676800`), or undefined. */
export function parseSystemdTime(text: string): Date | undefined {
  if (text === "" || text === "n/a" || text === "0") return undefined;
  const unix = /^@(\d+)$/.exec(text);
  if (unix) return new Date(Number(unix[1]) * 1000);
  const match = /^(?:[A-Z][a-z]{2} )?(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (UTC|GMT|[+-]\d{4})$/
    .exec(text);
  if (!match) return undefined; // a local zone name (CET): shown as systemd wrote it
  const zone = match[3] === "UTC" || match[3] === "GMT"
    ? "Z"
    : `${match[3].slice(0, 3)}:${match[3].slice(3)}`;
  const date = new Date(`${match[1]}T${match[2]}${zone}`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
