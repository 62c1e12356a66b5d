/**
 * Test helpers for real TLS servers in containers: the nginx image and container, and the
 * TLS helpers the haproxy, postfix and dovecot helpers share (certificates, atomic writes,
 * the fingerprint a server presents).
 *
 * Images are built from Debian packages by `tests/containers/*-image.sh` (no registry is
 * reachable). Containers run with `--network host`, so a test reaches the server on
 * 127.0.0.1; the secrets directory is mounted read-only at `/run/secrets` (a directory,
 * never a single file), the server's configuration from a separate temporary directory.
 *
 * Requires root (podman), `openssl` on the host, and `-A` (run, read, write, env, net).
 *
 * @example
 * ```ts
 * import { ensureNginxImage, installCertPair, makeCertPair, startNginx } from "./nginx.ts";
 *
 * await ensureNginxImage();
 * const secrets = await Deno.makeTempDir();
 * const a = await makeCertPair("a");
 * await installCertPair(secrets, a);
 * const server = await startNginx({ secretsDir: secrets }); // waits until it serves TLS
 * try {
 *   console.log(await server.fingerprint()); // === a.fingerprint
 * } finally {
 *   await server.stop();
 * }
 * ```
 *
 * @module
 */

import {
  containerLogs,
  containerPid,
  containerRunning,
  containerStartedAt,
  podman,
  type PodmanResult,
  removeContainer,
  runContainer,
} from "./podman.ts";

/** The nginx test image built by `tests/containers/nginx-image.sh`. */
export const NGINX_IMAGE = "localhost/secretsync-nginx:test";

const SCRIPT_TIMEOUT_MS = 300_000;

// ---------------------------------------------------------------------------------------
// Images

const built = new Map<string, Promise<void>>();

/**
 * Runs `tests/containers/<script>` (bash) once per process; the script itself does nothing
 * when its image exists. Throws with the script's output when it fails.
 */
export function ensureImageScript(script: string): Promise<void> {
  let done = built.get(script);
  if (!done) {
    done = (async () => {
      const path = new URL(`./${script}`, import.meta.url).pathname;
      const out = await new Deno.Command("bash", {
        args: [path],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(SCRIPT_TIMEOUT_MS),
      }).output();
      if (!out.success) {
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        throw new Error(`${script} failed (code ${out.code}):\n${text}`);
      }
    })();
    built.set(script, done);
    done.catch(() => built.delete(script));
  }
  return done;
}

/** Builds {@linkcode NGINX_IMAGE} unless it exists. */
export function ensureNginxImage(): Promise<void> {
  return ensureImageScript("nginx-image.sh");
}

// ---------------------------------------------------------------------------------------
// Certificates and files

/** A self-signed certificate with its key, both PEM, and the certificate's fingerprint. */
export interface CertPair {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate, `AB:CD:...` as `openssl x509 -fingerprint` prints it. */
  fingerprint: string;
}

/** Makes a self-signed P-256 certificate for `CN=<cn>`, valid for two days (openssl). */
export async function makeCertPair(cn: string): Promise<CertPair> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-cert-" });
  try {
    await runChecked("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-days",
      "2",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ]);
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    const key = await Deno.readTextFile(`${dir}/key.pem`);
    return { cert, key, fingerprint: await certFingerprint(cert) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The SHA-256 fingerprint of the first certificate in `pem`, `AB:CD:...`. */
export async function certFingerprint(pem: string): Promise<string> {
  const m = pem.match(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/);
  if (!m) throw new Error("No PEM certificate found");
  const der = Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  return [...digest].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

/**
 * Replaces `path` atomically, as secretsync does: writes a temporary file in the same
 * directory, sets its mode, renames it over `path` (so the file gets a new inode).
 */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${dir}/.${path.slice(dir.length + 1)}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(tmp, data, { mode });
    await Deno.chmod(tmp, mode); // the create mode is masked by the umask
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** Where {@linkcode installCertPair} writes what, relative to the secrets directory. */
export interface CertLayout {
  /** Certificate file name. @default {"tls.crt"} */
  cert?: string;
  /** Key file name. @default {"tls.key"} */
  key?: string;
  /** File with certificate + key in one PEM (HAProxy's classic form); none when absent. */
  combined?: string;
}

/**
 * Writes `pair` into `dir` atomically: `tls.crt` then `tls.key` (each write + rename), and
 * the combined PEM when `layout.combined` names one. Any of `pair`'s texts may be broken on
 * purpose.
 */
export async function installCertPair(
  dir: string,
  pair: Pick<CertPair, "cert" | "key">,
  layout: CertLayout = {},
): Promise<void> {
  await writeFileAtomic(`${dir}/${layout.cert ?? "tls.crt"}`, pair.cert, 0o644);
  await writeFileAtomic(`${dir}/${layout.key ?? "tls.key"}`, pair.key, 0o600);
  if (layout.combined) {
    await writeFileAtomic(`${dir}/${layout.combined}`, pair.cert + pair.key, 0o600);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

// ---------------------------------------------------------------------------------------
// What a server presents

/** How {@linkcode servedCertFingerprint} reaches the TLS layer. */
export interface TlsProbe {
  /** STARTTLS protocol for `openssl s_client -starttls` (`smtp`, `imap`); implicit TLS when absent. */
  starttls?: "smtp" | "imap";
  /** @default {5000} */
  timeoutMs?: number;
}

/**
 * The SHA-256 fingerprint (`AB:CD:...`) of the certificate the server on 127.0.0.1:`port`
 * presents: `openssl s_client -connect 127.0.0.1:PORT -servername x </dev/null |
 * openssl x509 -noout -fingerprint -sha256`.
 *
 * @throws {Error} when no certificate comes back (refused, handshake failure, timeout).
 */
export async function servedCertFingerprint(port: number, probe: TlsProbe = {}): Promise<string> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "x"];
  if (probe.starttls) args.push("-starttls", probe.starttls);
  const client = await run("openssl", args, probe.timeoutMs ?? 5000);
  const x509 = await run(
    "openssl",
    ["x509", "-noout", "-fingerprint", "-sha256"],
    5000,
    client.stdout,
  );
  const m = x509.stdout.match(/Fingerprint=([0-9A-F:]+)/i);
  if (x509.code !== 0 || !m) {
    throw new Error(
      `No certificate from 127.0.0.1:${port} (s_client code ${client.code}): ${
        client.stderr.trim().split("\n").slice(-3).join(" | ")
      }`,
    );
  }
  return m[1].toUpperCase();
}

/**
 * Polls {@linkcode servedCertFingerprint} until it succeeds and, when `expected` is given,
 * equals it. Returns the last fingerprint.
 *
 * @throws {Error} with the last fingerprint or error when `timeoutMs` (default 15000) passes.
 */
export async function waitForServedCert(
  port: number,
  expected?: string,
  probe: TlsProbe & { waitMs?: number } = {},
): Promise<string> {
  const deadline = Date.now() + (probe.waitMs ?? 15_000);
  let last = "";
  for (;;) {
    try {
      last = await servedCertFingerprint(port, probe);
      if (expected === undefined || last === expected) return last;
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(`127.0.0.1:${port} did not serve ${expected ?? "a certificate"}: ${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---------------------------------------------------------------------------------------
// Containers

/** Identity of a container's run: unchanged by a reload, changed by a restart. */
export interface RunIdentity {
  /** Host PID of the container's PID 1. */
  pid: number;
  startedAt: string;
  running: boolean;
}

/** A TLS server container started by one of the `start*` helpers. */
export interface TlsServer {
  /** Container name. */
  name: string;
  /** 127.0.0.1 port where it serves TLS. */
  port: number;
  /** How to probe its TLS port. */
  probe: TlsProbe;
  /** Host directory mounted at the config path (removed by {@linkcode TlsServer.stop}). */
  configDir: string;
  /** The fingerprint it presents now. */
  fingerprint(): Promise<string>;
  /** Waits until it presents `expected`. */
  waitForCert(expected: string, waitMs?: number): Promise<string>;
  /** `podman kill --signal SIG` (to PID 1). */
  kill(signal: string): Promise<void>;
  /** `podman exec NAME argv...`, never throwing on a non-zero exit. */
  exec(argv: string[]): Promise<PodmanResult>;
  /** PID 1's host PID, StartedAt, Running. */
  identity(): Promise<RunIdentity>;
  /** stdout + stderr so far. */
  logs(): Promise<string>;
  /** Removes the container and the config directory. */
  stop(): Promise<void>;
}

/** Options shared by the `start*` helpers. */
export interface StartOptions {
  /** Host directory mounted read-only at /run/secrets. */
  secretsDir: string;
  /** @default {freePort()} */
  port?: number;
  /** Extra time to wait for the first certificate. @default {20000} */
  readyMs?: number;
}

/**
 * Starts `image` with `--network host`, `secretsDir` read-only at /run/secrets and
 * `configFiles` written to a fresh directory mounted read-only at `configPath`, then waits
 * until 127.0.0.1:`port` presents a certificate.
 */
export async function startTlsServer(opts: {
  image: string;
  name: string;
  port: number;
  secretsDir: string;
  configPath: string;
  configFiles: Record<string, string>;
  cmd?: string[];
  probe?: TlsProbe;
  readyMs?: number;
}): Promise<TlsServer> {
  const configDir = await Deno.makeTempDir({ prefix: `${opts.name}-conf-` });
  for (const [file, text] of Object.entries(opts.configFiles)) {
    await Deno.writeTextFile(`${configDir}/${file}`, text);
  }
  let name: string;
  try {
    name = await runContainer({
      name: opts.name,
      image: opts.image,
      network: "host",
      mounts: [
        { host: opts.secretsDir, container: "/run/secrets", ro: true },
        { host: configDir, container: opts.configPath, ro: true },
      ],
      cmd: opts.cmd,
    });
  } catch (error) {
    await Deno.remove(configDir, { recursive: true });
    throw error;
  }
  const probe = opts.probe ?? {};
  const server: TlsServer = {
    name,
    port: opts.port,
    probe,
    configDir,
    fingerprint: () => servedCertFingerprint(opts.port, probe),
    waitForCert: (expected, waitMs) => waitForServedCert(opts.port, expected, { ...probe, waitMs }),
    kill: async (signal) => {
      await podman(["kill", "--signal", signal, "--", name]);
    },
    exec: (argv) => podman(["exec", "--", name, ...argv], { check: false }),
    identity: async () => ({
      pid: await containerPid(name),
      startedAt: (await containerStartedAt(name)).toISOString(),
      running: await containerRunning(name),
    }),
    logs: () => containerLogs(name),
    stop: async () => {
      await removeContainer(name);
      await Deno.remove(configDir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await waitForServedCert(opts.port, undefined, { ...probe, waitMs: opts.readyMs ?? 20_000 });
  } catch (error) {
    const logs = await containerLogs(name).catch((e) => `(no logs: ${e})`);
    await server.stop();
    throw new Error(`${opts.image} did not come up: ${error}\n--- logs ---\n${logs}`);
  }
  return server;
}

/**
 * The nginx.conf the helper mounts at /etc/nginx: TLS on 127.0.0.1:`port` with
 * /run/secrets/tls.crt + tls.key, errors to stderr (the container's log).
 */
export function nginxConf(port: number): string {
  return `user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate /run/secrets/tls.crt;
    ssl_certificate_key /run/secrets/tls.key;
    location / { return 200 "ok\\n"; }
  }
}
`;
}

/**
 * Starts {@linkcode NGINX_IMAGE} (PID 1: the nginx master, `nginx -g 'daemon off;'`) serving
 * TLS on 127.0.0.1 with /run/secrets/tls.crt + tls.key, config in a mounted /etc/nginx.
 * Call {@linkcode ensureNginxImage} first.
 */
export function startNginx(opts: StartOptions): Promise<TlsServer> {
  const port = opts.port ?? freePort();
  return startTlsServer({
    image: NGINX_IMAGE,
    name: "secretsync-test-nginx",
    port,
    secretsDir: opts.secretsDir,
    configPath: "/etc/nginx",
    configFiles: { "nginx.conf": nginxConf(port) },
    readyMs: opts.readyMs,
  });
}

// ---------------------------------------------------------------------------------------
// Processes

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  stdin?: string,
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin)).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function runChecked(cmd: string, args: string[]): Promise<string> {
  const result = await run(cmd, args, 30_000);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
