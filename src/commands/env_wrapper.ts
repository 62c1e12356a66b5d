/**
 * `secretsync env-wrapper`: prints the `_FILE` entrypoint wrapper, so users of the single
 * binary can install it: `secretsync env-wrapper > /usr/local/bin/secretsync-env`.
 *
 * @module
 */
import { Command } from "commander";
import { ENV_WRAPPER } from "../env_wrapper.ts";

/** Declares `env-wrapper`. */
export function envWrapperCommand(): Command {
  return new Command("env-wrapper")
    .description(
      "Print the POSIX sh wrapper that exports X from the file X_FILE names, then runs a command",
    );
}

/** Parses `env-wrapper` arguments (there are none); throws on extra ones. */
export function parseEnvWrapperArgs(args: string[]): void {
  envWrapperCommand().exitOverride().parse(args, { from: "user" });
}

/** Writes the script to stdout; returns the exit code. */
export async function runEnvWrapper(): Promise<number> {
  const bytes = new TextEncoder().encode(ENV_WRAPPER);
  for (let written = 0; written < bytes.length;) {
    written += await Deno.stdout.write(bytes.subarray(written));
  }
  return 0;
}
