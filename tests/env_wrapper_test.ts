/**
 * The `_FILE` entrypoint wrapper (contrib/secretsync-env) under dash on the host and under
 * busybox ash in a real container, with the same cases: exact values (newlines, a trailing
 * newline, quotes, spaces, backslashes, non-ASCII), and every refusal naming its variable
 * without starting the command.
 *
 * Each shell runs one generated driver script that runs every case, so the container starts
 * once.
 */
import assert from "node:assert/strict";
import { readWrapperScript, renderWrapperModule } from "../scripts/env_wrapper.ts";
import { ENV_WRAPPER } from "../src/env_wrapper.ts";
import { ensureBusyboxImage, podman, TEST_LABEL, uniqueName } from "./containers/podman.ts";
import { runCli } from "./e2e/harness.ts";

const WRAPPER = new URL("../contrib/secretsync-env", import.meta.url).pathname;

/** Files the cases read, by name under `<base>/s/`. */
const FILES: Record<string, string | Uint8Array> = {
  multi: "line one\nline two\n\n",
  quotes: `it's "quoted" $HOME \`id\` $(id) \\n \\ * ? [a] ~ ; | & < > #`,
  spaces: "  leading and trailing  ",
  dash: "-n",
  empty: "",
  unicode: "pässwörd ✓ 🔑\n",
  endsx: "ends with x\nx",
  crlf: "a\r\nb\r\n",
  big: "0123456789abcdef\n".repeat(6000), // 102 000 bytes
  toobig: "z".repeat(140_000),
  nul: new Uint8Array([0x61, 0, 0x62]),
  unreadable: "you cannot see me",
};

interface Case {
  name: string;
  /** The environment, besides PATH; `@` at the start of a value is the base directory. */
  env: Record<string, string>;
  code: number;
  /** Expected values of variables after the wrapper (null: unset). */
  values?: Record<string, string | null>;
  stderr?: RegExp;
  /** Run the script itself (its #!/bin/sh line) rather than through the shell under test. */
  shebang?: boolean;
  /** No command after the wrapper. */
  noCommand?: boolean;
  /** Root reads any file: this case cannot fail as root. */
  needsNonRoot?: boolean;
}

const text = (name: string) => FILES[name] as string;

const CASES: Case[] = [
  {
    name: "values",
    env: {
      MULTI_FILE: "@/s/multi",
      QUOTES_FILE: "@/s/quotes",
      SPACES_FILE: "@/s/spaces",
      DASH_FILE: "@/s/dash",
      EMPTY_FILE: "@/s/empty",
      UNICODE_FILE: "@/s/unicode",
      ENDSX_FILE: "@/s/endsx",
      CRLF_FILE: "@/s/crlf",
      BIG_FILE: "@/s/big",
      // A multi-line value with a line that looks like FAKE_FILE=…: not a variable.
      NOTE: "first\nFAKE_FILE=/etc/passwd\nlast",
    },
    code: 0,
    values: {
      MULTI: text("multi"),
      QUOTES: text("quotes"),
      SPACES: text("spaces"),
      DASH: text("dash"),
      EMPTY: "",
      UNICODE: text("unicode"),
      ENDSX: text("endsx"),
      CRLF: text("crlf"),
      BIG: text("big"),
      MULTI_FILE: null,
      BIG_FILE: null,
      FAKE: null,
      NOTE: "first\nFAKE_FILE=/etc/passwd\nlast",
    },
  },
  {
    name: "shebang",
    env: { MULTI_FILE: "@/s/multi" },
    code: 0,
    values: { MULTI: text("multi") },
    shebang: true,
  },
  {
    name: "missing",
    env: { MULTI_FILE: "@/s/multi", DB_PASSWORD_FILE: "@/s/nope" },
    code: 1,
    stderr: /^secretsync-env: cannot read DB_PASSWORD_FILE=\S*\/s\/nope: no such file\n$/,
  },
  {
    name: "directory",
    env: { DIR_FILE: "@/s" },
    code: 1,
    stderr: /DIR_FILE=\S*\/s: it is a directory/,
  },
  {
    name: "unreadable",
    env: { SECRET_FILE: "@/s/unreadable" },
    code: 1,
    stderr: /SECRET_FILE=\S*\/s\/unreadable: permission denied/,
    needsNonRoot: true,
  },
  {
    name: "both",
    env: { MULTI: "set already", MULTI_FILE: "@/s/multi" },
    code: 1,
    stderr: /both MULTI and MULTI_FILE are set/,
  },
  { name: "empty-name", env: { X_FILE: "" }, code: 1, stderr: /X_FILE is empty/ },
  { name: "nul", env: { N_FILE: "@/s/nul" }, code: 1, stderr: /N_FILE=\S+: it contains a NUL/ },
  {
    name: "toobig",
    env: { T_FILE: "@/s/toobig" },
    code: 1,
    stderr: /T_FILE=\S+: 140000 bytes is too large/,
  },
  {
    name: "explicit",
    env: { SECRETSYNC_ENV_FILES: "MULTI", MULTI_FILE: "@/s/multi", DASH_FILE: "@/s/dash" },
    code: 0,
    values: { MULTI: text("multi"), DASH: null, DASH_FILE: "@/s/dash" },
  },
  {
    name: "explicit-unset",
    env: { SECRETSYNC_ENV_FILES: "ZED" },
    code: 1,
    stderr: /ZED_FILE is not set/,
  },
  {
    name: "explicit-bad",
    env: { SECRETSYNC_ENV_FILES: "a-b" },
    code: 2,
    stderr: /"a-b" is not a variable name/,
  },
  { name: "usage", env: {}, code: 2, stderr: /usage: secretsync-env COMMAND/, noCommand: true },
];

/** Every variable any case checks. */
const CHECKED = [...new Set(CASES.flatMap((c) => Object.keys(c.values ?? {})))];

function shq(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The driver: for each case, runs the wrapper under `shell` in a clean environment with a
 * command that writes each checked variable to `out/<case>/<NAME>` (absent when unset), and
 * records the exit code and stderr.
 */
function driver(base: string, shell: string, asRoot: boolean): string {
  const probe = `for n in ${CHECKED.join(" ")}; do ` +
    `eval "[ -n \\"\\\${$n+set}\\" ]" && eval "printf %s \\"\\\${$n}\\"" > "$0/$n"; done; ` +
    `: > "$0/ran"`;
  const lines = ["#!/bin/sh", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"];
  for (const c of CASES) {
    if (c.needsNonRoot && asRoot) continue;
    const out = `${base}/out/${c.name}`;
    const env = Object.entries(c.env).map(([k, v]) =>
      `${k}=${shq(v.startsWith("@") ? base + v.slice(1) : v)}`
    );
    const wrapper = c.shebang
      ? shq(`${base}/secretsync-env`)
      : `${shell} ${shq(`${base}/secretsync-env`)}`;
    const command = c.noCommand ? "" : `/bin/sh -c ${shq(probe)} ${shq(out)}`;
    lines.push(
      `mkdir -p ${shq(out)}`,
      `env -i PATH="$PATH" ${env.join(" ")} ${wrapper} ${command} 2> ${shq(`${out}/stderr`)}`,
      `echo $? > ${shq(`${out}/code`)}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** A work directory with the wrapper, the files, the driver and an out/ directory. */
async function prepare(base: string, shell: string, asRoot: boolean): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "secretsync-envwrap-" });
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(`${dir}/s`);
  await Deno.mkdir(`${dir}/out`);
  await Deno.chmod(`${dir}/out`, 0o777);
  for (const [name, content] of Object.entries(FILES)) {
    const path = `${dir}/s/${name}`;
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
    await Deno.chmod(path, name === "unreadable" ? 0o000 : 0o644);
  }
  await Deno.copyFile(WRAPPER, `${dir}/secretsync-env`);
  await Deno.chmod(`${dir}/secretsync-env`, 0o755);
  await Deno.writeTextFile(`${dir}/driver.sh`, driver(base, shell, asRoot));
  return dir;
}

async function assertCases(dir: string, base: string, asRoot: boolean, label: string) {
  for (const c of CASES) {
    if (c.needsNonRoot && asRoot) continue;
    const out = `${dir}/out/${c.name}`;
    const what = `${label}, case ${c.name}`;
    const stderr = await Deno.readTextFile(`${out}/stderr`);
    assert.equal(Number(await Deno.readTextFile(`${out}/code`)), c.code, `${what}: ${stderr}`);
    if (c.stderr) assert.match(stderr, c.stderr, what);
    const ran = await Deno.stat(`${out}/ran`).then(() => true, () => false);
    assert.equal(ran, c.code === 0, `${what}: the command runs only on success`);
    if (c.code === 0) assert.equal(stderr, "", what);
    for (const [name, expected] of Object.entries(c.values ?? {})) {
      const got = await Deno.readFile(`${out}/${name}`).catch(() => null);
      const want = expected?.startsWith("@") ? base + expected.slice(1) : expected;
      if (want === null) assert.equal(got, null, `${what}: ${name} is unset`);
      else assert.deepEqual(got, new TextEncoder().encode(want), `${what}: ${name} is exact`);
    }
    // No value is ever printed: not even a piece of one.
    for (const content of Object.values(FILES)) {
      if (typeof content === "string" && content.trim().length > 4) {
        assert.ok(!stderr.includes(content.trim().slice(0, 12)), `${what}: a value leaked`);
      }
    }
  }
}

Deno.test("secretsync-env under dash exports exact values and refuses what it cannot", async () => {
  const dash = await new Deno.Command("dash", { args: ["-c", "exit 0"] }).output().catch(() =>
    null
  );
  assert.ok(dash?.success, "dash is not installed (see .ci/install-deps)");
  const asRoot = Deno.uid() === 0;
  const dir = await prepare("", "dash", asRoot);
  try {
    // The host paths are the directory itself: rewrite the driver with its real base.
    await Deno.writeTextFile(`${dir}/driver.sh`, driver(dir, "dash", asRoot));
    const run = await new Deno.Command("dash", { args: [`${dir}/driver.sh`] }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    await assertCases(dir, dir, asRoot, "dash");
  } finally {
    await Deno.chmod(`${dir}/s/unreadable`, 0o600);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("secretsync-env under busybox ash in a container, as an unprivileged user", async () => {
  const image = await ensureBusyboxImage();
  const dir = await prepare("/w", "/bin/sh", false);
  const name = uniqueName("secretsync-test-envwrap");
  try {
    const run = await podman([
      "run",
      "--rm",
      "--name",
      name,
      "--label",
      `${TEST_LABEL}=1`,
      "--network",
      "none",
      "--ulimit",
      "nofile=1024:1024",
      "--ulimit",
      "nproc=1024:1024",
      "--user",
      "65534:65534",
      "--mount",
      `type=bind,source=${dir},target=/w`,
      image,
      "/bin/sh",
      "/w/driver.sh",
    ], { check: false });
    assert.equal(run.code, 0, run.stderr);
    await assertCases(dir, "/w", false, "busybox");
  } finally {
    await Deno.chmod(`${dir}/s/unreadable`, 0o600);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("src/env_wrapper.ts is contrib/secretsync-env, and `secretsync env-wrapper` prints it", async () => {
  const script = await readWrapperScript();
  assert.equal(
    await Deno.readTextFile(new URL("../src/env_wrapper.ts", import.meta.url)),
    renderWrapperModule(script),
    "src/env_wrapper.ts is stale: run " +
      "`deno run --allow-read=. --allow-write=src/env_wrapper.ts scripts/env_wrapper.ts`",
  );
  assert.equal(ENV_WRAPPER, script);
  const printed = await runCli(["env-wrapper"]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.equal(printed.stdout, script);
});
