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
import { main } from "../src/main.ts";

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
  for (const command of ["watch", "status", "doctor"]) {
    const out = await captureStdout(() => main([command, "--help"]));
    assert.equal(out.code, 0, command);
    assert.match(out.text, /Example:\n {2}secretsync /, `${command} --help has an example`);
  }
  const top = await captureStdout(() => main(["--help"]));
  for (const command of ["watch", "status", "doctor"]) {
    assert.match(top.text, new RegExp(`\\n  ${command} `));
  }
});

async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; text: string }> {
  const chunks: string[] = [];
  const write = Deno.stdout.write;
  const writeSync = Deno.stdout.writeSync;
  const original = console.log;
  Deno.stdout.write = (p: Uint8Array) => {
    chunks.push(new TextDecoder().decode(p));
    return Promise.resolve(p.length);
  };
  Deno.stdout.writeSync = (p: Uint8Array) => {
    chunks.push(new TextDecoder().decode(p));
    return p.length;
  };
  console.log = (...args: unknown[]) => chunks.push(args.join(" ") + "\n");
  try {
    const code = await fn();
    return { code, text: chunks.join("") };
  } finally {
    Deno.stdout.write = write;
    Deno.stdout.writeSync = writeSync;
    console.log = original;
  }
}
