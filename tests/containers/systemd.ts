/**
 * Test helpers for a real systemd and a real Docker API:
 *
 * - {@linkcode startSystemdHost}: a podman container running Debian 12's systemd as PID 1
 *   (image from `systemd-image.sh`), privileged so its `.mount` units can mount, on the host's
 *   network so the OCI stand-in on 127.0.0.1 is reachable. `secretsync` in it is a wrapper that
 *   runs this checkout's source with Deno under exactly the release binary's permissions (a
 *   `deno compile`d binary cannot be built here: it needs a denort download). Deno, its cache
 *   and the checkout are bind-mounted read-only.
 * - {@linkcode startDockerApi}: `podman system service` on a Unix socket: the Docker-compatible
 *   API the `docker` CLI talks to, acting on this host's podman containers.
 *
 * Requires root, podman, and `-A`.
 *
 * @example
 * ```ts
 * import { startDockerApi, startSystemdHost } from "./systemd.ts";
 *
 * const api = await startDockerApi();
 * const host = await startSystemdHost({ dockerSocket: api.socket });
 * try {
 *   await host.exec(["secretsync", "install"]);
 * } finally {
 *   await host.stop();
 *   await api.stop();
 * }
 * ```
 *
 * @module
 */
import { MAIN_MODULE, REPO_ROOT, RUNTIME_FLAGS } from "../../scripts/permissions.ts";
import { ensureImageScript } from "./nginx.ts";
import { podman, type PodmanResult, removeContainer, TEST_LABEL, uniqueName } from "./podman.ts";

/** The image built by `tests/containers/systemd-image.sh`. */
export const SYSTEMD_IMAGE = "localhost/secretsync-systemd:test";

/** Where the helpers mount Deno, its cache and the checkout inside the systemd container. */
const IN_CONTAINER = { deno: "/opt/deno/deno", denoDir: "/opt/deno-dir", repo: "/opt/secretsync" };

const BOOT_TIMEOUT_MS = 30_000;

/** Builds {@linkcode SYSTEMD_IMAGE} unless it is current (debootstrap from Debian's mirror). */
export function ensureSystemdImage(): Promise<void> {
  return ensureImageScript("systemd-image.sh");
}

/**
 * The `/usr/local/bin/secretsync` the systemd container gets: this checkout's `src/main.ts`
 * under Deno with exactly the flags `deno compile` bakes into the release binary
 * (`RUNTIME_FLAGS` of `scripts/permissions.ts`), nothing fetched (`--cached-only`).
 */
export function secretsyncWrapper(): string {
  const main = MAIN_MODULE.replace(REPO_ROOT, IN_CONTAINER.repo);
  const words = [
    IN_CONTAINER.deno,
    "run",
    `--config=${IN_CONTAINER.repo}/deno.json`,
    "--cached-only",
    ...RUNTIME_FLAGS,
    main,
  ];
  return [
    "#!/bin/sh",
    "# secretsync from source, with the release binary's permissions (tests/containers/systemd.ts).",
    `export DENO_DIR=${IN_CONTAINER.denoDir} DENO_NO_UPDATE_CHECK=1`,
    `exec ${words.map(shellQuote).join(" ")} "$@"`,
    "",
  ].join("\n");
}

/** A running systemd container. */
export interface SystemdHost {
  name: string;
  /** `podman exec NAME argv…`; never throws on a non-zero exit. */
  exec(argv: string[], opts?: { timeoutMs?: number }): Promise<PodmanResult>;
  /** Writes a file inside the container (root-owned, mode as given). */
  writeFile(path: string, text: string, mode?: number): Promise<void>;
  /** `systemctl show UNIT -p …` as a record. */
  show(unit: string, properties: string[]): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/** Options of {@linkcode startSystemdHost}. */
export interface SystemdHostOptions {
  /** A Docker API socket on the host, mounted at /var/run/docker.sock with the docker CLI. */
  dockerSocket?: string;
  /**
   * Give the container's own podman (crun, no cgroups: see systemd-image.sh) storage on a host
   * directory (overlay cannot stack on the container's overlay) and these host images.
   */
  podmanImages?: string[];
}

/** Starts a systemd container and waits until systemd reports the system running. */
export async function startSystemdHost(opts: SystemdHostOptions = {}): Promise<SystemdHost> {
  await ensureSystemdImage();
  const name = uniqueName("secretsync-systemd");
  const denoBin = await Deno.realPath(Deno.execPath());
  const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  const mounts = [
    `type=bind,source=${denoBin},target=${IN_CONTAINER.deno},ro=true`,
    `type=bind,source=${denoDir},target=${IN_CONTAINER.denoDir},ro=true`,
    `type=bind,source=${REPO_ROOT},target=${IN_CONTAINER.repo},ro=true`,
  ];
  let storage: string | undefined;
  if (opts.podmanImages) {
    storage = await Deno.makeTempDir({ prefix: "secretsync-nested-storage-" });
    mounts.push(`type=bind,source=${storage},target=/var/lib/containers`);
  }
  if (opts.dockerSocket) {
    const docker = await which("docker");
    mounts.push(
      `type=bind,source=${docker},target=/usr/local/bin/docker,ro=true`,
      `type=bind,source=${opts.dockerSocket},target=/run/docker.sock`,
    );
  }
  await podman([
    "run",
    "--detach",
    "--name",
    name,
    "--label",
    `${TEST_LABEL}=1`,
    "--runtime",
    "runc",
    "--privileged",
    "--systemd=always",
    "--network",
    "host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    ...mounts.flatMap((m) => ["--mount", m]),
    SYSTEMD_IMAGE,
    "/lib/systemd/systemd",
  ]);
  const exec: SystemdHost["exec"] = (argv, o = {}) =>
    podman(["exec", name, ...argv], { check: false, timeoutMs: o.timeoutMs });
  const host: SystemdHost = {
    name,
    exec,
    async writeFile(path, text, mode = 0o644) {
      const dir = await Deno.makeTempDir({ prefix: "secretsync-systemd-file-" });
      try {
        await Deno.writeTextFile(`${dir}/f`, text, { mode });
        await Deno.chmod(`${dir}/f`, mode);
        await podman(["cp", `${dir}/f`, `${name}:${path}`]);
        await podman(["exec", name, "chown", "root:root", path]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
    async show(unit, properties) {
      const out = await exec(["systemctl", "show", unit, ...properties.map((p) => `-p${p}`)]);
      return Object.fromEntries(
        out.stdout.trim().split("\n").map((line) => {
          const at = line.indexOf("=");
          return [line.slice(0, at), line.slice(at + 1)];
        }),
      );
    },
    async stop() {
      await removeContainer(name);
      if (storage) await Deno.remove(storage, { recursive: true }).catch(() => {});
    },
  };
  try {
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    let state = "";
    while (Date.now() < deadline) {
      state = (await exec(["systemctl", "is-system-running"])).stdout.trim();
      if (state === "running" || state === "degraded") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (state !== "running") {
      const failed = (await exec(["systemctl", "--failed", "--no-pager"])).stdout;
      throw new Error(`systemd in ${name} did not come up (state "${state}"):\n${failed}`);
    }
    await host.writeFile("/usr/local/bin/secretsync", secretsyncWrapper(), 0o755);
    for (const image of opts.podmanImages ?? []) await copyImage(image, name);
  } catch (error) {
    await host.stop();
    throw error;
  }
  return host;
}

/** A Docker-compatible API (`podman system service`) on a Unix socket. */
export interface DockerApi {
  /** Path of the socket. */
  socket: string;
  /** `unix://…`, for DOCKER_HOST. */
  dockerHost: string;
  stop(): Promise<void>;
}

/** Starts `podman system service` on a socket in a new temp dir; waits until docker reaches it. */
export async function startDockerApi(): Promise<DockerApi> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-docker-api-" });
  const socket = `${dir}/podman.sock`;
  const dockerHost = `unix://${socket}`;
  const child = new Deno.Command("podman", {
    args: ["system", "service", "--time=0", dockerHost],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already ended.
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const probe = await new Deno.Command("docker", {
        args: ["version", "--format", "{{.Server.Version}}"],
        env: { DOCKER_HOST: dockerHost },
        stdin: "null",
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(5_000),
      }).output();
      if (probe.success) break;
      if (Date.now() > deadline) throw new Error(`docker cannot reach ${dockerHost}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { socket, dockerHost, stop };
}

/** `podman save IMAGE | podman exec -i CONTAINER podman load`. */
async function copyImage(image: string, container: string): Promise<void> {
  const save = new Deno.Command("podman", {
    args: ["save", "--quiet", image],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const load = new Deno.Command("podman", {
    args: ["exec", "-i", container, "podman", "load", "--quiet"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [, saveErr, saved, loaded] = await Promise.all([
    save.stdout.pipeTo(load.stdin),
    new Response(save.stderr).text(),
    save.status,
    load.output(),
  ]);
  if (!saved.success || !loaded.success) {
    const text = saveErr + new TextDecoder().decode(loaded.stderr);
    throw new Error(`Cannot copy ${image} into ${container}: ${text}`);
  }
}

async function which(program: string): Promise<string> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${program}`;
    if (await Deno.stat(path).then((i) => i.isFile, () => false)) return await Deno.realPath(path);
  }
  throw new Error(`${program} is not on PATH`);
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:,@+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
