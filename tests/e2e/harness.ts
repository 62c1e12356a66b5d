/**
 * End-to-end harness: the `secretsync` CLI as a subprocess, a workspace of temp directories,
 * and the flags that point a run at the OCI stand-in.
 *
 * The CLI runs with exactly the permissions the compiled binary carries (not `-A`), from `/`
 * rather than the checkout, plus read/write on the tests' temp directory only: a permission the
 * binary lacks fails a test here.
 */
import type { OciStandIn } from "../oci/standin.ts";
import { cliCommand } from "../../scripts/permissions.ts";

/** Every workspace lives below this directory, the one extra path the CLI may touch. */
const E2E_BASE = `${Deno.env.get("TMPDIR") ?? "/tmp"}/secretsync-e2e`;

/** What one CLI run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How the CLI subprocess is started. */
export interface CliOptions {
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
  /** Variables to set or override (e.g. a PATH with stand-in programs first). */
  env?: Record<string, string>;
  /** A program to run the CLI under (e.g. strace), as `cliCommand` takes it. */
  prefix?: readonly string[];
}

/** The CLI as a `Deno.Command` with the binary's permissions; for `spawn()`. */
export function cli(args: string[], options: CliOptions = {}): Deno.Command {
  return cliCommand(args, { paths: [E2E_BASE], ...options });
}

/** Runs `secretsync ARGS` as a subprocess, as an operator would. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const output = await cli(args, options).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Temp directories for one test: a root for secrets (0700), a state dir and the map file. */
export interface Workspace {
  dir: string;
  root: string;
  stateDir: string;
  map: string;
  writeMap(lines: string[]): Promise<void>;
  /** `--map … --root … --state-dir …` for this workspace. */
  args(): string[];
  cleanup(): Promise<void>;
}

/** Makes a workspace under a fresh temp directory. */
export async function makeWorkspace(): Promise<Workspace> {
  await Deno.mkdir(E2E_BASE, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ dir: E2E_BASE, prefix: "ws-" });
  const root = `${dir}/secrets`;
  const stateDir = `${dir}/state`;
  const map = `${dir}/map.csv`;
  await Deno.mkdir(root, { mode: 0o700 });
  await Deno.chmod(root, 0o700);
  return {
    dir,
    root,
    stateDir,
    map,
    writeMap: async (lines) => {
      await Deno.writeTextFile(map, lines.join("\n") + "\n");
      // The map is refused when group or others may write it, whatever the umask.
      await Deno.chmod(map, 0o644);
    },
    args: () => ["--map", map, "--root", root, "--state-dir", stateDir],
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Flags that point `sync` at the stand-in with instance principals. */
export function instancePrincipalArgs(oci: OciStandIn): string[] {
  return [
    "--auth",
    "instance_principal",
    "--imds-url",
    oci.imdsUrl,
    "--auth-endpoint",
    oci.authEndpoint,
    "--endpoint",
    oci.secretsEndpoint,
  ];
}

/** A random secret value, distinctive enough to search every output for. */
export function secretValue(label: string): string {
  return `${label}-${crypto.randomUUID()}`;
}

/** Asserts that no value appears anywhere in the given outputs. */
export function assertNoLeak(values: string[], ...outputs: string[]): void {
  const all = outputs.join("\n");
  for (const value of values) {
    if (all.includes(value)) throw new Error(`a secret value leaked into the output`);
  }
}
