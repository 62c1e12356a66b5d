import { MAIN_MODULE, REPO_ROOT, RUNTIME_FLAGS } from "./permissions.ts";
import { startOciStandIn } from "../tests/oci/standin.ts";
const N = Number(Deno.args[0] ?? 100);
const RUNS = Number(Deno.args[1] ?? 6);
const main = Deno.env.get("MAIN") ?? MAIN_MODULE;
const oci = await startOciStandIn({ control: true, latencyMs: 50, latencyPaths: ["federation", "secrets"] });
const dir = await Deno.makeTempDir({ prefix: "trace-" });
const ids = Array.from({ length: N }, (_, i) => `ocid1.vaultsecret.oc1.iad.amaaaaaabench${i}`);
ids.forEach((id, i) => oci.setSecret(id, `value-${i}-${crypto.randomUUID()}\n`));
const withDir = (flags: readonly string[]) => flags.map((f) => /^--allow-(read|write)=/.test(f) ? `${f},${dir}` : f);
const walls: number[] = [];
for (let r = 0; r < RUNS + 1; r++) {
  const ws = `${dir}/w${r}`; const root = `${ws}/secrets`;
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${ws}/map.csv`, ids.map((id, i) => `${id},${root}/s${i},0600,,\n`).join(""));
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", `--config=${REPO_ROOT}/deno.json`, ...withDir(RUNTIME_FLAGS), main, "sync",
    "--map", `${ws}/map.csv`, "--root", root, "--state-dir", `${ws}/state`, "--imds-url", oci.imdsUrl, "--auth-endpoint", oci.authEndpoint,
    "--endpoint", oci.secretsEndpoint, "--concurrency", "16", "--json"], env: { NO_COLOR: "1", SECRETSYNC_TRACE: "1" }, stdout: "piped", stderr: "piped", cwd: "/" }).output();
  const wall = performance.now() - t0;
  if (r === 0) continue;
  walls.push(wall);
  const err = new TextDecoder().decode(out.stderr);
  const trace = err.split("\n").filter((l) => l.startsWith("TRACE")).join(" | ");
  console.log(`code ${out.code} wall ${wall.toFixed(0)} ms ${trace}`);
  if (Deno.env.get("SHOW")) console.log(err.slice(0, 3000));
}
walls.sort((a, b) => a - b);
console.log(`median ${walls[Math.floor(walls.length / 2)].toFixed(0)} ms; min ${walls[0].toFixed(0)}`);
await oci.close(); await Deno.remove(dir, { recursive: true });
