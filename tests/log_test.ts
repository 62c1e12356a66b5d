import assert from "node:assert/strict";
import {
  cliCommand,
  MAIN_MODULE,
  permissionFlags,
  PERMISSIONS,
  REPO_ROOT,
} from "../scripts/permissions.ts";
import {
  createLogger,
  errorText,
  formatLine,
  type LogStream,
  PROGRESS_MIN_TOTAL,
  streamStyle,
} from "../src/log.ts";
import { startOciStandIn } from "./oci/standin.ts";
import { assertNoLeak, instancePrincipalArgs, makeWorkspace, secretValue } from "./e2e/harness.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A stream that records what is written; a terminal when asked. */
function memoryStream(terminal = false): LogStream & { text(): string } {
  const chunks: Uint8Array[] = [];
  return {
    writeSync(p) {
      chunks.push(p.slice());
      return p.length;
    },
    isTerminal: () => terminal,
    text: () => chunks.map(decode).join(""),
  };
}

Deno.test("streamStyle() picks journald prefixes, colour or plain", async (t) => {
  await t.step("JOURNAL_STREAM naming this stream: journal", () => {
    const stream = { dev: 25, ino: 4711 };
    assert.equal(streamStyle({ journalStream: "25:4711", stream, terminal: false }), "journal");
  });
  await t.step("JOURNAL_STREAM naming another stream (inherited, output redirected): not", () => {
    const stream = { dev: 25, ino: 9 };
    assert.equal(streamStyle({ journalStream: "25:4711", stream, terminal: false }), "plain");
  });
  await t.step("JOURNAL_STREAM and a stream that cannot be examined: journal", () => {
    assert.equal(streamStyle({ journalStream: "25:4711", terminal: false }), "journal");
  });
  await t.step(
    "JOURNAL_STREAM inherited by a terminal (a desktop terminal run by systemd --user): colour",
    () => {
      // The journal's stream is a socket, never a terminal, whatever the variable says.
      assert.equal(streamStyle({ journalStream: "25:4711", terminal: true }), "color");
      assert.equal(
        streamStyle({ journalStream: "25:4711", terminal: true, noColor: "1" }),
        "plain",
      );
    },
  );
  await t.step("a terminal: colour, unless NO_COLOR is set, even empty", () => {
    assert.equal(streamStyle({ terminal: true }), "color");
    assert.equal(streamStyle({ terminal: true, noColor: "" }), "plain");
    assert.equal(streamStyle({ terminal: true, noColor: "1" }), "plain");
  });
  await t.step("a pipe or file: plain", () => {
    assert.equal(streamStyle({ terminal: false }), "plain");
  });
});

Deno.test("errorText() gets <3> for the journal, never on a terminal", () => {
  const env = (name: string) => name === "JOURNAL_STREAM" ? "25:4711" : undefined;
  assert.equal(errorText("secretsync: bad", env, false), "<3>secretsync: bad");
  assert.equal(errorText("secretsync: bad", env, true), "secretsync: bad");
  assert.equal(errorText("secretsync: bad", () => undefined, false), "secretsync: bad");
});

Deno.test("formatLine() prefixes syslog priorities 3, 4, 6 for journald", () => {
  assert.equal(formatLine("error", "fetch", "m", "journal"), "<3>[ERROR] (fetch) m");
  assert.equal(formatLine("warn", "map", "m", "journal"), "<4>[WARN] (map) m");
  assert.equal(formatLine("info", "write", "m", "journal"), "<6>[INFO] (write) m");
  assert.equal(formatLine("info", "write", "m", "plain"), "[INFO] (write) m");
  assert.equal(formatLine("error", "x", "m", "color"), "\x1b[31m[ERROR]\x1b[0m (x) m");
});

Deno.test("createLogger() decorates each stream for where it goes", () => {
  const stdout = memoryStream(true);
  const stderr = memoryStream(false);
  const log = createLogger({ stdout, stderr, env: () => undefined });
  log.log("info", "write", "Updated /run/secrets/a");
  log.log("error", "fetch", "Cannot fetch x");
  assert.equal(stdout.text(), "\x1b[32m[INFO]\x1b[0m (write) Updated /run/secrets/a\n");
  assert.equal(stderr.text(), "[ERROR] (fetch) Cannot fetch x\n");

  const json = memoryStream(true);
  createLogger({ json: true, stdout: json, stderr: json, env: () => undefined })
    .log("info", "c", "m");
  assert.match(json.text(), /^\{"time":"[^"]+","level":"info","component":"c","message":"m"\}\n$/);
  const journald = memoryStream(false);
  const env = (name: string) => name === "JOURNAL_STREAM" ? "1:2" : undefined;
  createLogger({ json: true, stdout: journald, stderr: journald, env }).log("error", "c", "m");
  assert.match(
    journald.text(),
    /^<3>\{"time":"[^"]+","level":"error","component":"c","message":"m"\}\n$/,
  );
});

Deno.test("createLogger() shows a progress line on a terminal for long maps only, replaced by the next line", () => {
  const stdout = memoryStream(false);
  const stderr = memoryStream(true);
  const log = createLogger({ stdout, stderr, env: () => undefined });
  assert.ok(log.progress);
  log.progress("fetch", 3, PROGRESS_MIN_TOTAL - 1); // short map: nothing
  assert.equal(stderr.text(), "");
  log.progress("fetch", 1, 40);
  log.progress("fetch", 2, 40);
  log.log("warn", "fetch", "slow");
  log.progress("fetch", 40, 40); // done: nothing shown, nothing to clear
  assert.equal(
    stderr.text(),
    "\r\x1b[2K(fetch) 1/40\r\x1b[2K(fetch) 2/40\r\x1b[2K\x1b[33m[WARN]\x1b[0m (fetch) slow\n",
  );
  // Not a terminal, or JSON: no progress at all.
  assert.equal(createLogger({ stdout, stderr: memoryStream(false) }).progress, undefined);
  assert.equal(createLogger({ json: true, stdout, stderr }).progress, undefined);
});

Deno.test("secretsync under the release permissions prefixes priorities when JOURNAL_STREAM is set", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-log-" });
  try {
    await Deno.writeTextFile(`${dir}/map.csv`, "not-an-ocid,/run/secrets/a,0600,,\n");
    const args = ["check", "--map", `${dir}/map.csv`];
    const journal = await cliCommand(args, { paths: [dir], env: { JOURNAL_STREAM: "8:12345" } })
      .output();
    assert.equal(journal.code, 2);
    const lines = decode(journal.stderr).trim().split("\n");
    assert.ok(lines.length > 0);
    for (const line of lines) assert.match(line, /^<3>\[ERROR\] \(map\) /);

    const usage = await cliCommand(["sync", "--concurrency", "x"], {
      env: { JOURNAL_STREAM: "8:12345" },
    }).output();
    assert.equal(usage.code, 2);
    assert.match(decode(usage.stderr), /^<3>secretsync: /);

    // Commander's own errors: a typo in secretsync.env's SECRETSYNC_ARGS must reach -p err too.
    for (const wrong of [["sync", "--concurency", "4"], ["nosuchcommand"], ["recipe", "show"]]) {
      const typo = await cliCommand(wrong, { env: { JOURNAL_STREAM: "8:12345" } }).output();
      assert.equal(typo.code, 2, wrong.join(" "));
      const text = decode(typo.stderr);
      assert.match(text, /^<3>/, wrong.join(" "));
      for (const line of text.trim().split("\n")) assert.match(line, /^<3>/, text);
    }

    const plain = await cliCommand(args, { paths: [dir] }).output();
    assert.equal(plain.code, 2);
    assert.match(decode(plain.stderr), /^\[ERROR\] \(map\) /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secretsync on a real terminal colours its level tags, and not with NO_COLOR", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-log-" });
  try {
    await Deno.writeTextFile(`${dir}/map.csv`, "not-an-ocid,/run/secrets/a,0600,,\n");
    // script(1) runs the command on a pseudo-terminal; its output is the terminal's. The
    // command is secretsync under the release permissions (the map's directory added).
    const flags = permissionFlags({
      ...PERMISSIONS,
      read: [...PERMISSIONS.read, dir],
      write: [...PERMISSIONS.write, dir],
    });
    const argv = [Deno.execPath(), "run", `--config=${REPO_ROOT}/deno.json`, ...flags, "--quiet"]
      .concat([MAIN_MODULE, "check", "--map", `${dir}/map.csv`]);
    const quoted = argv.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
    const run = async (env: Record<string, string>) => {
      const out = await new Deno.Command("script", {
        args: ["-qec", quoted, "/dev/null"],
        env,
        clearEnv: true,
        stdin: "null",
      }).output();
      return decode(out.stdout);
    };
    const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
    const home = Deno.env.get("HOME") ?? "/root";
    const coloured = await run({
      PATH: path,
      HOME: home,
      TERM: "xterm",
      DENO_NO_UPDATE_CHECK: "1",
    });
    assert.ok(coloured.includes("\x1b[31m[ERROR]\x1b[0m (map) "), coloured);
    const plain = await run({
      PATH: path,
      HOME: home,
      TERM: "xterm",
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    });
    assert.match(plain, /\[ERROR\] \(map\) /);
    assert.ok(!plain.includes("\x1b["), plain);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sync on a real terminal shows a progress line for a long map, and no value", async () => {
  const oci = await startOciStandIn();
  const ws = await makeWorkspace();
  try {
    const total = PROGRESS_MIN_TOTAL + 5;
    const values: string[] = [];
    const lines: string[] = [];
    for (let i = 0; i < total; i++) {
      const id = `ocid1.vaultsecret.oc1.iad.amaaaaaaprogress${i}`;
      values.push(secretValue(`p${i}`));
      oci.setSecret(id, values[i]);
      lines.push(`${id},${ws.root}/s${i},0600,,`);
    }
    await ws.writeMap(lines);
    const flags = permissionFlags({
      ...PERMISSIONS,
      read: [...PERMISSIONS.read, ws.dir],
      write: [...PERMISSIONS.write, ws.dir],
    });
    const argv = [Deno.execPath(), "run", `--config=${REPO_ROOT}/deno.json`, ...flags, "--quiet"]
      .concat([MAIN_MODULE, "sync", ...ws.args(), ...instancePrincipalArgs(oci)]);
    const quoted = argv.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
    const out = await new Deno.Command("script", {
      args: ["-qec", quoted, "/dev/null"],
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: "/root",
        TERM: "xterm",
        DENO_NO_UPDATE_CHECK: "1", // clearEnv: the task's does not reach it
      },
      clearEnv: true,
      stdin: "null",
    }).output();
    const text = decode(out.stdout);
    assert.equal(out.code, 3, text);
    assert.ok(text.includes(`\r\x1b[2K(fetch) 1/${total}`), text);
    assert.ok(text.includes(`(fetch) ${total - 1}/${total}`), text);
    assertNoLeak(values, text);
  } finally {
    await ws.cleanup();
    await oci.close();
  }
});
