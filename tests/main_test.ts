// The command line's dispatch: unknown commands (including Object.prototype's member names)
// and help, through the real entry point in a subprocess.
import assert from "node:assert/strict";

const MAIN = new URL("../src/main.ts", import.meta.url).pathname;

async function run(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("issue 8 #8: Object.prototype's names are unknown commands (exit 2), not lookups", async () => {
  const names = ["constructor", "hasOwnProperty", "valueOf", "toString", "__proto__", "frob"];
  const results = await Promise.all(names.map((name) => run([name])));
  names.forEach((name, i) => {
    const { code, stdout, stderr } = results[i];
    assert.equal(code, 2, `${name}: exit code (stderr: ${stderr})`);
    assert.match(stderr, new RegExp(`unknown command '${name}'`), name);
    assert.doesNotMatch(stderr + stdout, /Uncaught|TypeError/, name);
  });
});

Deno.test("issue 8 #8: `sync --help` and `help sync` print the same usage", async () => {
  for (const command of ["sync", "check", "install"]) {
    const [flag, word] = await Promise.all([run([command, "--help"]), run(["help", command])]);
    assert.equal(flag.code, 0);
    assert.match(flag.stdout, new RegExp(`^Usage: secretsync ${command} \\[options\\]`));
    assert.equal(flag.stdout, word.stdout, command);
  }
});

Deno.test("README: --help shows each --root default once, as the README's table gives it", async () => {
  for (const command of ["sync", "check", "watch", "doctor"]) {
    const { code, stdout } = await run([command, "--help"]);
    assert.equal(code, 0, command);
    const root = stdout.slice(
      stdout.indexOf("--root <dir>"),
      stdout.indexOf("--", stdout.indexOf("--root <dir>") + 2),
    );
    assert.match(root, /\(default: \/run\/secrets\)/, `${command}: ${root}`);
    assert.doesNotMatch(root, /default: \[\]/, `${command}: ${root}`);
  }
});

Deno.test("the entry point starts the session key pair only for sync and watch with an instance principal", async () => {
  const { usesInstancePrincipal } = await import("../src/main.ts");
  const yes = [
    ["sync"],
    ["sync", "--map", "m.csv", "--root", "/run/secrets"],
    ["watch", "--interval", "6h"],
    ["sync", "--auth", "instance-principal"],
    ["sync", "--auth=instance_principal"],
    ["sync", "--", "--auth", "api_key"],
  ];
  const no = [
    [],
    ["check"],
    ["doctor"],
    ["sync", "--help"],
    ["watch", "-h"],
    ["sync", "--auth", "api_key"],
    ["sync", "--auth=resource_principal"],
    ["watch", "--auth", "security-token"],
    ["sync", "--auth"],
  ];
  for (const args of yes) assert.equal(usesInstancePrincipal(args), true, args.join(" "));
  for (const args of no) assert.equal(usesInstancePrincipal(args), false, args.join(" "));
});
