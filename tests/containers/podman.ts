/**
 * Test helpers that drive real podman: build the busybox test image, run containers, read
 * their logs, remove them. No registry is reachable here, so images are built locally.
 *
 * The podman set-up these helpers need (runc, cgroupfs, ulimits) is done by
 * `.ci/install-deps`; {@linkcode runContainer} also passes the ulimits itself, so the
 * helpers work on a machine with podman but without that configuration.
 *
 * Requires `--allow-run`, `--allow-read`, `--allow-write` (temp dirs) and `--allow-env`.
 *
 * @example
 * ```ts
 * import { ensureBusyboxImage, secretReaderCmd, waitForLog, withContainer } from "./podman.ts";
 *
 * await ensureBusyboxImage();
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/token`, "s3cret");
 * await withContainer({
 *   name: "reader",
 *   mounts: [{ host: dir, container: "/run/secrets", ro: true }],
 *   cmd: secretReaderCmd("/run/secrets/token"),
 * }, async (name) => {
 *   await waitForLog(name, /^READY /m);
 *   // ... signal it, then: await waitForLog(name, /^HUP /m);
 * });
 * ```
 *
 * @module
 */

/** The busybox test image built by {@linkcode ensureBusyboxImage}. */
export const BUSYBOX_IMAGE = "localhost/secretsync-busybox:test";

/** Where the secret-reader script lives inside {@linkcode BUSYBOX_IMAGE}. */
export const SECRET_READER_PATH = "/usr/local/bin/secret-reader";

/** Label on every container these helpers start, to find leftovers: `podman ps -a --filter label=secretsync.test`. */
export const TEST_LABEL = "secretsync.test";

const PODMAN_TIMEOUT_MS = 60_000;
/** Image label holding a hash of the image's inputs: a changed script or busybox rebuilds it. */
const INPUTS_LABEL = "secretsync.inputs";
const SECRET_READER_SCRIPT = new URL("./secret-reader.sh", import.meta.url);
const BUSYBOX_BIN = "/bin/busybox";

/** A bind mount: always a directory, never a single file. */
export interface Mount {
  /** Directory on the host. */
  host: string;
  /** Where it appears in the container. */
  container: string;
  /** Read-only in the container. @default {false} */
  ro?: boolean;
}

/** Options of {@linkcode runContainer}. */
export interface RunOptions {
  /** Name prefix; a random suffix makes it unique. @default {"secretsync-test"} */
  name?: string;
  /** Use `name` as it is, without a suffix: for a name chosen (and mapped) beforehand. */
  exactName?: boolean;
  /** @default {BUSYBOX_IMAGE} */
  image?: string;
  /** Directories to bind-mount. @default {[]} */
  mounts?: Mount[];
  /** Command; the image's CMD when absent. */
  cmd?: string[];
  /** `"none"`: no network at all; `"host"`: the host's (to reach a port on 127.0.0.1). @default {"none"} */
  network?: "none" | "host";
  /** Extra `podman run` flags, placed before the image. @default {[]} */
  flags?: string[];
}

/** What a podman call produced. */
export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `podman args...` with a deadline. Throws when it exits non-zero unless `check` is false.
 *
 * @param args Arguments after `podman`.
 * @param opts `check`: throw on a non-zero exit (default true); `timeoutMs` (default 60000).
 */
export async function podman(
  args: string[],
  opts: { check?: boolean; timeoutMs?: number } = {},
): Promise<PodmanResult> {
  const timeoutMs = opts.timeoutMs ?? PODMAN_TIMEOUT_MS;
  const output = await new Deno.Command("podman", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const result = {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
  if (output.signal === "SIGTERM" && output.code !== 0) {
    throw new Error(`podman ${args.join(" ")} timed out after ${timeoutMs} ms`);
  }
  if ((opts.check ?? true) && result.code !== 0) {
    throw new Error(
      `podman ${args.join(" ")} failed with code ${result.code}: ${result.stderr.trim()}`,
    );
  }
  return result;
}

/**
 * Builds {@linkcode BUSYBOX_IMAGE} unless it exists and was built from the same inputs:
 * a rootfs of the static busybox with its applet links, `/etc/passwd`, `/etc/group`, and the
 * secret-reader script, imported with `podman import`. CMD is `/bin/sh`.
 *
 * @returns The image name.
 */
export async function ensureBusyboxImage(): Promise<string> {
  const busybox = await Deno.readFile(BUSYBOX_BIN).catch((error) => {
    throw new Error(`Cannot read ${BUSYBOX_BIN}: install busybox-static (.ci/install-deps)`, {
      cause: error,
    });
  });
  if (_elfInterpreter(busybox)) {
    throw new Error(`Cannot use ${BUSYBOX_BIN}: it is dynamically linked; install busybox-static`);
  }
  const script = await Deno.readFile(SECRET_READER_SCRIPT);
  const inputs = await sha256Hex(_concatBytes([busybox, script]));

  const existing = await podman(
    ["image", "inspect", "--format", `{{index .Labels "${INPUTS_LABEL}"}}`, BUSYBOX_IMAGE],
    { check: false },
  );
  if (existing.code === 0 && existing.stdout.trim() === inputs) return BUSYBOX_IMAGE;

  const work = await Deno.makeTempDir({ prefix: "secretsync-busybox-" });
  try {
    const root = `${work}/rootfs`;
    for (const dir of ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc", "root"]) {
      await Deno.mkdir(`${root}/${dir}`, { recursive: true });
    }
    for (const dir of ["proc", "sys", "dev", "run/secrets"]) {
      await Deno.mkdir(`${root}/${dir}`, { recursive: true });
    }
    await Deno.mkdir(`${root}/tmp`, { mode: 0o1777 });
    await Deno.chmod(`${root}/tmp`, 0o1777); // mkdir's mode is masked by the umask

    await Deno.writeFile(`${root}/bin/busybox`, busybox, { mode: 0o755 });
    // `--list-full` gives each applet's usual place (bin/sh, usr/bin/sha256sum, ...).
    const list = await new Deno.Command(BUSYBOX_BIN, { args: ["--list-full"] }).output();
    for (const applet of new TextDecoder().decode(list.stdout).split("\n")) {
      if (applet === "" || applet === "bin/busybox") continue;
      await Deno.mkdir(`${root}/${applet.slice(0, applet.lastIndexOf("/"))}`, { recursive: true });
      await Deno.symlink("/bin/busybox", `${root}/${applet}`);
    }
    await Deno.writeFile(`${root}${SECRET_READER_PATH}`, script, { mode: 0o755 });
    await Deno.writeTextFile(
      `${root}/etc/passwd`,
      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\nnogroup:x:65534:\n");

    const tar = await new Deno.Command("tar", {
      args: [
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "-C",
        root,
        "-cf",
        `${work}/rootfs.tar`,
        ".",
      ],
      stdin: "null",
    }).output();
    if (!tar.success) throw new Error(`tar failed: ${new TextDecoder().decode(tar.stderr)}`);
    await podman([
      "import",
      "--change",
      'CMD ["/bin/sh"]',
      "--change",
      `LABEL ${INPUTS_LABEL}=${inputs}`,
      `${work}/rootfs.tar`,
      BUSYBOX_IMAGE,
    ]);
    return BUSYBOX_IMAGE;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/**
 * The command that runs the secret reader on `file`: it prints `READY <sha256>` once ready,
 * then `HUP <sha256>` / `USR1 <sha256>` for each signal (`missing` if the file is absent).
 *
 * @param file Path inside the container. @default {"/run/secrets/secret"}
 */
export function secretReaderCmd(file = "/run/secrets/secret"): string[] {
  return ["/bin/sh", SECRET_READER_PATH, file];
}

/** One line of the secret reader's output. */
export interface ReaderEvent {
  /** `READY` at start, then the signal's name. */
  event: string;
  /** sha256 (hex) of the file when the line was printed, or `"missing"`. */
  digest: string;
}

/** Parses the secret reader's lines out of a container's logs. */
export function readerEvents(logs: string): ReaderEvent[] {
  return [...logs.matchAll(/^([A-Z0-9]+) ([0-9a-f]{64}|missing)$/gm)].map((m) => ({
    event: m[1],
    digest: m[2],
  }));
}

/** sha256 of bytes or of a UTF-8 string, in hex: what `sha256sum` prints. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Starts a detached container. Always `--network none` unless asked otherwise, labelled
 * {@linkcode TEST_LABEL}, with a unique name. Remove it with {@linkcode removeContainer}, in a
 * `finally`, or use {@linkcode withContainer}.
 *
 * @returns The container's name.
 */
export async function runContainer(opts: RunOptions = {}): Promise<string> {
  const name = opts.exactName && opts.name ? opts.name : uniqueName(opts.name ?? "secretsync-test");
  const args = [
    "run",
    "--detach",
    "--name",
    name,
    "--label",
    `${TEST_LABEL}=1`,
    "--network",
    opts.network ?? "none",
    // Podman's defaults for root are above this machine's hard limits, which runc may not
    // raise (see .ci/install-deps); harmless where the limits are higher.
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
  ];
  for (const mount of opts.mounts ?? []) {
    if (/[,=]/.test(mount.host) || /[,=]/.test(mount.container)) {
      throw new Error(`Cannot mount "${mount.host}": "," and "=" are not allowed in --mount`);
    }
    const info = await Deno.stat(mount.host);
    if (!info.isDirectory) {
      // An atomic rename gives a file a new inode; a single-file bind mount keeps the old one.
      throw new Error(`Cannot mount "${mount.host}": mount a directory, not a single file`);
    }
    args.push(
      "--mount",
      `type=bind,source=${mount.host},target=${mount.container}${mount.ro ? ",ro=true" : ""}`,
    );
  }
  args.push(...(opts.flags ?? []), opts.image ?? BUSYBOX_IMAGE, ...(opts.cmd ?? []));
  try {
    await podman(args);
  } catch (error) {
    // A failed start may leave a created container behind.
    await removeContainer(name);
    throw error;
  }
  return name;
}

/**
 * Runs `fn` with a fresh container and removes the container afterwards, whatever happens.
 *
 * @returns What `fn` returns.
 */
export async function withContainer<T>(
  opts: RunOptions,
  fn: (name: string) => Promise<T>,
): Promise<T> {
  const name = await runContainer(opts);
  try {
    return await fn(name);
  } finally {
    await removeContainer(name);
  }
}

/** Removes a container, running or not, at once (no stop grace period). Never throws when it is gone already. */
export async function removeContainer(name: string): Promise<void> {
  await podman(["rm", "--force", "--time", "0", "--ignore", "--", name]);
}

/** The container's output so far, stdout and stderr together. */
export async function containerLogs(name: string): Promise<string> {
  const result = await podman(["logs", "--", name]);
  return result.stdout + result.stderr;
}

/**
 * Polls the container's logs until `pattern` matches (or `count` matches), and returns them.
 *
 * @throws {Error} with the logs so far when `timeoutMs` (default 10000) passes first.
 */
export async function waitForLog(
  name: string,
  pattern: RegExp,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<string> {
  const count = opts.count ?? 1;
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const global = new RegExp(
    pattern.source,
    pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`,
  );
  for (;;) {
    const logs = await containerLogs(name);
    if ([...logs.matchAll(global)].length >= count) return logs;
    if (Date.now() > deadline) {
      throw new Error(
        `Container "${name}" did not log ${count}× ${pattern} in time; logs:\n${logs}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** When the container's current run started: it changes on a restart, not on a reload. */
export async function containerStartedAt(name: string): Promise<Date> {
  const result = await podman([
    "container",
    "inspect",
    "--format",
    "{{.State.StartedAt}}",
    "--",
    name,
  ]);
  // Go prints "2025-11-27 23:40:01.123456789 +0000 UTC"; keep what Date can read.
  const m = result.stdout.trim().match(/^(\S+) (\d+:\d+:\d+(?:\.\d{1,3})?)\d* ([+-]\d{2})(\d{2})/);
  if (!m) throw new Error(`Cannot parse StartedAt "${result.stdout.trim()}" of "${name}"`);
  return new Date(`${m[1]}T${m[2]}${m[3]}:${m[4]}`);
}

/** The host PID of the container's main process (0 when it is not running). */
export async function containerPid(name: string): Promise<number> {
  const result = await podman(["container", "inspect", "--format", "{{.State.Pid}}", "--", name]);
  return Number(result.stdout.trim());
}

/** Whether the container's main process is running. */
export async function containerRunning(name: string): Promise<boolean> {
  const result = await podman([
    "container",
    "inspect",
    "--format",
    "{{.State.Running}}",
    "--",
    name,
  ]);
  return result.stdout.trim() === "true";
}

/** `prefix-<random>`: test runs in parallel (and other engineers' tests) never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The ELF interpreter (dynamic loader) of a binary, or `undefined` for a static one. */
function _elfInterpreter(elf: Uint8Array): string | undefined {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const isElf64 = view.getUint32(0) === 0x7f454c46 && elf[4] === 2 && elf[5] === 1;
  if (!isElf64) throw new Error("Cannot read busybox: not a little-endian 64-bit ELF file");
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (view.getUint32(at, true) === 3 /* PT_INTERP */) {
      const offset = Number(view.getBigUint64(at + 8, true));
      const size = Number(view.getBigUint64(at + 32, true));
      return new TextDecoder().decode(elf.subarray(offset, offset + size - 1));
    }
  }
  return undefined;
}

function _concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
