/**
 * Option parsing of `watch`, `status` and `doctor`, compared as whole objects. `watch` and
 * `doctor` get sync's parser and options from main.ts; here too.
 */
import assert from "node:assert/strict";
import { doctorCommand, parseDoctorArgs } from "../src/commands/doctor.ts";
import { parseStatusArgs } from "../src/commands/status.ts";
import { parseSyncArgs, syncCommand } from "../src/commands/sync.ts";
import { UsageError } from "../src/commands/usage.ts";
import { parseWatchArgs, watchCommand } from "../src/commands/watch.ts";
import { cliCommand } from "../scripts/permissions.ts";

const syncOptions = () => syncCommand().options;

Deno.test("parseWatchArgs(): --interval and --jitter here, every other flag by sync's parser", () => {
  const args = ["--interval", "1h30m", "--map", "/etc/m.csv", "--jitter=45s", "--json"];
  assert.deepEqual(parseWatchArgs(args, parseSyncArgs, syncOptions()), {
    run: parseSyncArgs(["--map", "/etc/m.csv", "--json"]),
    intervalMs: 5_400_000,
    jitterMs: 45_000,
  });
  const defaults = parseWatchArgs([], parseSyncArgs, syncOptions());
  assert.equal(defaults.intervalMs, 6 * 3_600_000);
  assert.equal(defaults.jitterMs, 5 * 60_000);
});

Deno.test("parseWatchArgs() refuses a bad duration, and --dry-run", () => {
  for (
    const [args, pattern] of [
      [["--interval", "soon"], /--interval "soon" must be a duration/],
      [["--interval", "0"], /--interval "0" must be a duration/],
      [["--jitter", "-1m"], /--jitter "-1m" must be a duration/],
    ] as [string[], RegExp][]
  ) {
    assert.throws(
      () => parseWatchArgs(args, parseSyncArgs, syncOptions()),
      (e) => e instanceof UsageError && pattern.test(e.message),
    );
  }
  // Not among watch's options: commander refuses it as unknown.
  assert.throws(() => parseWatchArgs(["--dry-run"], parseSyncArgs, syncOptions()));
});

Deno.test("parseStatusArgs() and parseDoctorArgs()", () => {
  assert.deepEqual(parseStatusArgs([]), {
    stateDir: "/run/oci-secretsync",
    json: false,
    timer: true,
  });
  assert.deepEqual(parseStatusArgs(["--state-dir", "/run/s", "--json", "--no-timer"]), {
    stateDir: "/run/s",
    json: true,
    timer: false,
  });
  assert.throws(() => parseStatusArgs(["--state-dir", "rel"]), UsageError);
  assert.deepEqual(parseDoctorArgs(["--map", "/etc/m.csv"], parseSyncArgs, syncOptions()), {
    run: parseSyncArgs(["--map", "/etc/m.csv"]),
  });
  // Flags that mean nothing to doctor are not among its options.
  assert.throws(() => parseDoctorArgs(["--dry-run"], parseSyncArgs, syncOptions()));
});

Deno.test("watch, status and doctor --help show an example; the program lists them", async () => {
  const names = (cmd: { options: readonly { long?: string }[] }) => cmd.options.map((o) => o.long);
  assert.ok(names(watchCommand(syncOptions())).includes("--metrics-file"));
  assert.ok(!names(watchCommand(syncOptions())).includes("--dry-run"));
  assert.ok(!names(doctorCommand(syncOptions())).includes("--metrics-file"));
  // As a subprocess: commander ends the process after printing help.
  for (const command of ["watch", "status", "doctor"]) {
    const out = await cliCommand([command, "--help"]).output();
    assert.equal(out.code, 0, command);
    assert.match(
      new TextDecoder().decode(out.stdout),
      /Example:\n {2}secretsync /,
      `${command} --help has an example`,
    );
  }
  const top = new TextDecoder().decode((await cliCommand(["--help"]).output()).stdout);
  for (const command of ["watch", "status", "doctor"]) {
    assert.match(top, new RegExp(`\\n  ${command} `));
  }
});
