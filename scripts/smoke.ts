/**
 * The smoke run ({@linkcode smokeRun}): before compiling, `scripts/compile.ts` runs its pruned
 * build copy under `deno run` with the release permissions through every path that loads a
 * dependency, so that a file pruned from `node_modules/` that is needed after all fails the
 * build rather than the binary.
 *
 * @module
 */
import { RUNTIME_FLAGS } from "./permissions.ts";
import { startOciStandIn } from "../tests/oci/standin.ts";
import { BuildError } from "./_util.ts";

/**
 * Runs the pruned build copy the way the binary runs: `deno run` with its `node_modules/`
 * and exactly the release permission flags ({@linkcode RUNTIME_FLAGS}), plus read and write
 * on one temp directory (as `cliCommand`'s `paths` does), from `/`. Exercises every path
 * that loads a dependency: commander (`--version`, `--help`), csv-parse and zod (`check` and
 * `sync` parse a map and options), the recipes (`recipe list`) and the OCI SDK, imported
 * lazily (`sync` against the OCI stand-in, with instance principals and with an API key;
 * the files must hold the secrets). Returns the steps it ran; throws
 * {@linkcode BuildError} with the output of the first one that misbehaves.
 */
export async function smokeRun(stage: string, commit: string): Promise<string[]> {
  const version = JSON.parse(await Deno.readTextFile(`${stage}/deno.json`)).version;
  const dir = await Deno.makeTempDir({ prefix: "secretsync-smoke-" });
  const oci = await startOciStandIn();
  const ran: string[] = [];
  try {
    const root = `${dir}/secrets`;
    await Deno.mkdir(root, { mode: 0o700 });
    await Deno.chmod(root, 0o700);
    const secrets = {
      instance: "ocid1.vaultsecret.oc1.iad.amaaaaaasmokeinstance",
      apiKey: "ocid1.vaultsecret.oc1.iad.amaaaaaasmokeapikey",
    };
    const values = { instance: crypto.randomUUID(), apiKey: crypto.randomUUID() };
    oci.setSecret(secrets.instance, values.instance);
    oci.setSecret(secrets.apiKey, values.apiKey);
    const maps = { instance: `${dir}/instance.csv`, apiKey: `${dir}/api_key.csv` };
    await Deno.writeTextFile(
      maps.instance,
      `# ocid,path,mode,container,signal\n${secrets.instance},${root}/instance,0600,,\n`,
    );
    await Deno.writeTextFile(maps.apiKey, `${secrets.apiKey},${root}/app/api_key,0440\n`);
    const { configFile, profile } = await oci.writeApiKeyConfig(dir);
    const state = ["--root", root, "--state-dir", `${dir}/state`];

    const flags = RUNTIME_FLAGS.map((flag) =>
      /^--allow-(read|write)=/.test(flag) ? `${flag},${dir}` : flag
    );
    const cli = async (label: string, args: string[], expectCode: number, expectOut?: RegExp) => {
      const shown = `secretsync ${args.join(" ").replaceAll(dir, "$SMOKE")}`;
      ran.push(label);
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          `--config=${stage}/deno.json`,
          "--node-modules-dir=auto",
          "--frozen",
          ...flags,
          `${stage}/src/main.ts`,
          ...args,
        ],
        cwd: "/",
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      const leaked = Object.values(values).some((v) => stdout.includes(v) || stderr.includes(v));
      // src/vault/sdk.ts keeps the SDK quiet; its frames now live under node_modules/.
      const noisy = /DeprecationWarning|punycode/.test(stderr);
      if (output.code !== expectCode || (expectOut && !expectOut.test(stdout)) || leaked || noisy) {
        throw new BuildError(
          `Smoke run of the pruned build copy failed: \`${shown}\` exited with ${output.code} ` +
            `(expected ${expectCode}${expectOut ? `, stdout matching ${expectOut}` : ""})` +
            `${leaked ? " and printed a secret" : ""}${noisy ? " and the SDK was not quiet" : ""}` +
            ". A file pruned from node_modules may " +
            `be needed after all (see pruneNodeModules in scripts/prune.ts).\n` +
            `stdout:\n${stdout.trim()}\nstderr:\n${stderr.trim()}`,
        );
      }
    };
    const escaped = `${version} (commit ${commit})`.replace(/[.()]/g, "\\$&");
    await cli("--version", ["--version"], 0, new RegExp(`^secretsync ${escaped}\n$`));
    await cli("--help", ["--help"], 0, /Usage: secretsync/);
    await cli("recipe list", ["recipe", "list"], 0, /nginx/);
    await cli("check", ["check", "--map", maps.instance, "--root", root], 0);
    await cli("sync (instance principal)", [
      "sync",
      "--map",
      maps.instance,
      ...state,
      "--imds-url",
      oci.imdsUrl,
      "--auth-endpoint",
      oci.authEndpoint,
      "--endpoint",
      oci.secretsEndpoint,
    ], 3);
    await cli("sync --auth api_key", [
      "sync",
      "--map",
      maps.apiKey,
      ...state,
      "--auth",
      "api_key",
      "--oci-config",
      configFile,
      "--profile",
      profile,
      "--endpoint",
      oci.secretsEndpoint,
    ], 3);
    const written = {
      instance: await Deno.readTextFile(`${root}/instance`).catch(() => undefined),
      apiKey: await Deno.readTextFile(`${root}/app/api_key`).catch(() => undefined),
    };
    if (written.instance !== values.instance || written.apiKey !== values.apiKey) {
      throw new BuildError("Smoke run: sync exited 3 but did not write the secrets it fetched");
    }
    if (oci.calls.imds === 0 || oci.calls.federation === 0 || oci.calls.rejected > 0) {
      throw new BuildError(
        `Smoke run: the stand-in saw ${oci.calls.imds} metadata and ${oci.calls.federation} ` +
          `federation requests and rejected ${oci.calls.rejected}: ${oci.rejections.join("; ")}`,
      );
    }
    return ran;
  } finally {
    await oci.close();
    await Deno.remove(dir, { recursive: true });
  }
}
