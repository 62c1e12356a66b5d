/**
 * The decisions of `secretsync doctor`: each check is a pure function from what was observed
 * (a file's owner, a root's filesystem, a container's mounts, the timer) to one line that says
 * ok, warn or fail, and what to do. Observing is the command's job; deciding is done here, so
 * every rule is tested on plain data.
 *
 * @module
 */
import type { MountInfo } from "./mounts.ts";
import { MEMORY_FILESYSTEMS } from "./mounts.ts";
import { ownershipProblem } from "./ownership.ts";
import { dirname, isInside } from "./paths.ts";
import type { ContainerMount } from "./reload/runtime.ts";
import type { TimerInfo } from "./timer.ts";

/** How a check came out. `fail` makes `doctor` exit 1. */
export type CheckLevel = "ok" | "warn" | "fail";

/** One line of `doctor`'s report. */
export interface CheckResult {
  level: CheckLevel;
  /** What was checked: `map`, `root /run/secrets`, `container web`, `auth`, `timer`, … */
  subject: string;
  /** What was found. */
  message: string;
  /** What to do, for `warn` and `fail`. */
  fix?: string;
}

/** `ok   subject: message` / `FAIL subject: message; fix`: one line per check. */
export function formatCheck(result: CheckResult): string {
  const tag = { ok: "ok  ", warn: "WARN", fail: "FAIL" }[result.level];
  const fix = result.fix ? ` — ${result.fix}` : "";
  return `${tag} ${result.subject}: ${result.message}${fix}`;
}

/** 1 when any check failed, else 0 (warnings do not fail `doctor`). */
export function doctorExitCode(results: readonly CheckResult[]): 0 | 1 {
  return results.some((r) => r.level === "fail") ? 1 : 0;
}

/** Owner and mode of a file or directory, as `Deno.lstat` reports them. */
export interface Ownership {
  uid: number | null;
  mode: number | null;
}

/**
 * A file secretsync trusts (the map, a recipe file) must belong to root or to the user running
 * secretsync, and be writable by nobody else: whoever can edit the map chooses what gets
 * written where and which containers are signalled. The rule is `ownershipProblem()`'s.
 */
export function ownershipCheck(
  subject: string,
  path: string,
  info: Ownership,
  uid: number | null,
): CheckResult {
  const mode = (info.mode ?? 0) & 0o7777;
  const problem = ownershipProblem(info, { owners: "root-or-self", uid });
  if (problem) {
    return {
      level: "fail",
      subject,
      message: `${path}: ${problem}`,
      fix: (info.mode ?? 0) & 0o022 ? `chmod go-w ${path}` : `chown root: ${path}`,
    };
  }
  return {
    level: "ok",
    subject,
    message: `${path} belongs to uid ${info.uid}, mode 0${mode.toString(8)}`,
  };
}

/**
 * A root should be a memory filesystem: on a disk, every secret outlives a reboot and can be
 * recovered from the disk. `problems` are what makes the directory unusable (owner, mode,
 * missing), from the same rules `sync` applies.
 */
export function rootCheck(
  root: string,
  problems: readonly string[],
  mount: MountInfo | Error,
): CheckResult {
  const subject = `root ${root}`;
  if (problems.length > 0) {
    return {
      level: "fail",
      subject,
      message: problems.join("; "),
      fix:
        `create it owned by the user running secretsync, mode 0700 (install mounts a tmpfs there)`,
    };
  }
  if (mount instanceof Error) {
    return {
      level: "warn",
      subject,
      message: `cannot tell which filesystem it is on: ${mount.message}`,
      fix: "check with `findmnt --target " + root + "` that it is a tmpfs",
    };
  }
  const where = mount.target === root ? "" : ` (mounted at ${mount.target})`;
  if (!MEMORY_FILESYSTEMS.includes(mount.fstype)) {
    return {
      level: "warn",
      subject,
      message: `on ${mount.fstype}${where}: secrets written there reach the disk`,
      fix:
        `mount a tmpfs on it: \`systemctl enable --now run-secrets.mount\` for /run/secrets, or \`mount -t tmpfs -o mode=0700,nosuid,nodev,noexec tmpfs ${root}\``,
    };
  }
  return { level: "ok", subject, message: `${mount.fstype}${where}, safe owner and mode` };
}

/**
 * A container sees a secret only through a mount of a directory that holds it. A bind mount of
 * the file itself keeps showing the old inode after secretsync's atomic rename: the container
 * never sees a new version, which is worse than no mount because it looks fine at first.
 *
 * @param paths the host paths of the container's map entries (symlinks resolved where possible)
 * @param mounts the container's mounts, or `null` when it does not exist
 */
export function containerMountCheck(
  container: string,
  paths: readonly string[],
  mounts: readonly ContainerMount[] | null,
): CheckResult {
  const subject = `container ${container}`;
  if (mounts === null) {
    return {
      level: "fail",
      subject,
      message: "no such container",
      fix: "start it, or fix the name in the map's target column",
    };
  }
  const singleFile: string[] = [];
  const unmounted: string[] = [];
  const seen = new Map<string, string>();
  for (const path of paths) {
    const bySource = mounts.filter((m) => m.source !== "");
    const file = bySource.find((m) => m.source === path);
    if (file) {
      singleFile.push(`${path} (at ${file.destination})`);
      continue;
    }
    const dir = bySource
      .filter((m) => isInside(path, m.source))
      .sort((a, b) => b.source.length - a.source.length)[0];
    if (dir) seen.set(path, `${dir.source} at ${dir.destination}`);
    else unmounted.push(path);
  }
  if (singleFile.length > 0) {
    const dirs = [...new Set(paths.map(dirname))].join(", ");
    return {
      level: "fail",
      subject,
      message: `mounts ${
        singleFile.join(", ")
      } as a single file: it will never see a new version, because secretsync replaces the file (atomic rename, new inode) and a single-file bind mount keeps the old one`,
      fix: `mount the directory instead, e.g. -v ${dirs}:${dirs}:ro, and recreate the container`,
    };
  }
  if (unmounted.length > 0) {
    return {
      level: "fail",
      subject,
      message: `does not mount the directory of ${unmounted.join(", ")}: it cannot read it`,
      fix: `mount the directory read-only, e.g. -v ${dirname(unmounted[0])}:${
        dirname(unmounted[0])
      }:ro`,
    };
  }
  return {
    level: "ok",
    subject,
    message: `mounts the directory of each of its files (${
      [...new Set(seen.values())].join("; ")
    })`,
  };
}

/** The timer `install` enables: is it enabled, and when does it fire next? */
export function timerCheck(info: TimerInfo): CheckResult {
  const subject = "timer oci-secretsync.timer";
  if (!info.available) {
    return {
      level: "warn",
      subject,
      message: `cannot ask systemd: ${info.reason}`,
      fix: "without systemd, run `secretsync watch` (or cron) so secrets are kept in sync",
    };
  }
  if (info.loadState === "not-found" || info.unitFileState === "") {
    return {
      level: "warn",
      subject,
      message: "not installed",
      fix: "run `secretsync install`, or keep secrets in sync with `secretsync watch`",
    };
  }
  if (info.unitFileState !== "enabled" || info.activeState !== "active") {
    return {
      level: "fail",
      subject,
      message: `${info.unitFileState}, ${info.activeState}: no run is scheduled`,
      fix: "systemctl enable --now oci-secretsync.timer",
    };
  }
  const next = info.nextElapse ? info.nextElapse.toISOString() : info.nextElapseText || "unknown";
  return { level: "ok", subject, message: `enabled and active, next run ${next}` };
}

/** How long before expiry a certificate is a warning. */
export const CERTIFICATE_WARN_DAYS = 21;

/** One line per certificate the state knows the expiry of. */
export function certificateChecks(
  certificates: readonly { path: string; notAfter: Date }[],
  now: Date,
): CheckResult[] {
  return certificates.map(({ path, notAfter }) => {
    const subject = `certificate ${path}`;
    const days = Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000);
    const when = notAfter.toISOString();
    if (notAfter <= now) {
      return {
        level: "fail",
        subject,
        message: `expired ${when}`,
        fix: "put a renewed certificate in the vault; the next run writes it",
      };
    }
    if (days < CERTIFICATE_WARN_DAYS) {
      return {
        level: "warn",
        subject,
        message: `expires ${when}, in ${days} days`,
        fix: "renew it and put the new version in the vault",
      };
    }
    return { level: "ok", subject, message: `valid until ${when} (${days} days)` };
  });
}
