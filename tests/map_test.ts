import assert from "node:assert/strict";
import { type Entry, formatProblems, parseMap } from "../src/map.ts";

const ID = "ocid1.vaultsecret.oc1.iad.amaaaaaaexample";
const ID2 = "ocid1.vaultsecret.oc1..bbbbexample";
const roots = ["/run/secrets"];

function entries(text: string): Entry[] {
  const map = parseMap(text, { roots });
  if (!map.ok) throw new Error(`unexpected problems: ${JSON.stringify(map.problems)}`);
  return map.entries;
}

function problems(text: string, options = { roots }): string[] {
  const map = parseMap(text, options);
  assert.equal(map.ok, false, "expected the map to be rejected");
  return map.ok ? [] : map.problems.map((p) => `${p.line}: ${p.message}`);
}

Deno.test("parseMap() reads the original format, comments, blank lines, CRLF and a header", () => {
  const text = [
    "ocid,path,mode,container,signal",
    "# a comment",
    "   # an indented comment",
    "",
    `${ID},/run/secrets/db_password,0600,myapp,HUP`,
    `${ID2},/run/secrets/smtp_password,0400,mailrelay,SIGUSR1\r`,
    `  ${ID} , /run/secrets/api/key , 0440 , , `,
    "   ",
  ].join("\r\n");
  assert.deepEqual(entries(text), [
    {
      line: 5,
      secretId: ID,
      path: "/run/secrets/db_password",
      mode: 0o600,
      target: { kind: "container", name: "myapp" },
      reload: { kind: "signal", signal: "HUP" },
    },
    {
      line: 6,
      secretId: ID2,
      path: "/run/secrets/smtp_password",
      mode: 0o400,
      target: { kind: "container", name: "mailrelay" },
      reload: { kind: "signal", signal: "USR1" },
    },
    { line: 7, secretId: ID, path: "/run/secrets/api/key", mode: 0o440 },
  ]);
});

Deno.test("parseMap() accepts three columns, an empty mode (0600), quoted fields and an owner", () => {
  assert.deepEqual(
    entries(`${ID},"/run/secrets/a,b",\n${ID2},/run/secrets/c,0640,web,usr2,1000:1001\n`),
    [
      { line: 1, secretId: ID, path: "/run/secrets/a,b", mode: 0o600 },
      {
        line: 2,
        secretId: ID2,
        path: "/run/secrets/c",
        mode: 0o640,
        owner: { uid: 1000, gid: 1001 },
        target: { kind: "container", name: "web" },
        reload: { kind: "signal", signal: "USR2" },
      },
    ],
  );
});

Deno.test("parseMap() rejects each bad field with its line number", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["OCID shape", `ocid1.vault.oc1..x,/run/secrets/a,0600`, /not a secret OCID/],
    ["OCID with spaces", `ocid1.vaultsecret.oc1..a b,/run/secrets/a,0600`, /not a secret OCID/],
    ["relative path", `${ID},run/secrets/a,0600`, /absolute and normalized/],
    ["dot-dot path", `${ID},/run/secrets/../etc/passwd,0600`, /absolute and normalized/],
    ["double slash", `${ID},/run/secrets//a,0600`, /absolute and normalized/],
    ["trailing slash", `${ID},/run/secrets/a/,0600`, /absolute and normalized/],
    ["outside the root", `${ID},/etc/shadow,0600`, /not inside "\/run\/secrets"/],
    ["a sibling of the root", `${ID},/run/secretsX/a,0600`, /not inside/],
    ["the root itself", `${ID},/run/secrets,0600`, /not inside/],
    ["non-octal mode", `${ID},/run/secrets/a,0800`, /octal permission bits/],
    ["setuid mode", `${ID},/run/secrets/a,4600`, /octal permission bits/],
    ["group-writable", `${ID},/run/secrets/a,0620`, /group- or world-writable/],
    ["world-writable", `${ID},/run/secrets/a,0602`, /group- or world-writable/],
    [
      "container read as a flag",
      `${ID},/run/secrets/a,0600,--privileged,HUP`,
      /not a valid container name/,
    ],
    [
      "container with a space",
      `${ID},/run/secrets/a,0600,my app,HUP`,
      /not a valid container name/,
    ],
    [
      "unknown signal",
      `${ID},/run/secrets/a,0600,web,RELOAD`,
      /neither a signal .* nor a known recipe/,
    ],
    ["signal without container", `${ID},/run/secrets/a,0600,,HUP`, /no container to reload/],
    ["owner by name", `${ID},/run/secrets/a,0600,web,HUP,www-data`, /numeric uid:gid/],
    ["too few fields", `${ID},/run/secrets/a`, /expected 3 to 6 fields/],
    ["too many fields", `${ID},/run/secrets/a,0600,web,HUP,0:0,x`, /expected 3 to 6 fields/],
    ["broken quote", `${ID},"/run/secrets/a,0600`, /not valid CSV/],
  ];
  for (const [name, line, pattern] of cases) {
    await t.step(name, () => {
      const found = problems(`# header comment\n${line}\n`);
      assert.equal(found.length, 1, found.join("\n"));
      assert.match(found[0], /^2: /);
      assert.match(found[0], pattern);
    });
  }
});

Deno.test("issue 8 #7: a quoted map with bare CR line ends keeps every record", () => {
  const lines = [
    `${ID},"/run/secrets/a",0600,web,HUP`,
    `${ID2},"/run/secrets/b",0600,,`,
    `"${ID}",/run/secrets/c,0600,,`,
  ];
  for (const ending of ["\n", "\r\n", "\r", "\r\r\n"]) {
    const found = entries(lines.join(ending) + ending);
    assert.deepEqual(found.map((e) => [e.line, e.path]), [
      [1, "/run/secrets/a"],
      [2, "/run/secrets/b"],
      [3, "/run/secrets/c"],
    ], JSON.stringify(ending));
  }
});

Deno.test("issue 8 #12: map errors quote paths escaped, so no line or escape is injected", () => {
  const evil = "/run/secrets/a\x1b[2K\u2028[INFO] (write) Updated";
  const found = [
    ...problems(`${ID},/etc/x\x1b[31m,0600`),
    ...problems(`${ID},${evil},0600\n${ID2},${evil},0600`),
    ...problems(`${ID},/run/secrets/a,0600,,HUP\x1b[0m`),
  ];
  assert.ok(found.some((p) => /is not inside/.test(p)));
  assert.ok(found.some((p) => /is already written by/.test(p)));
  for (const problem of found) {
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(problem, /[\x00-\x1f\x7f-\x9f\u2028\u2029]/, problem);
  }
  assert.ok(found.some((p) => p.includes("\\u001b[2K\\u2028")), found.join("\n"));
});

Deno.test("issue 8 #1: a pidfile: target inside a root is refused, naming the line", () => {
  const found = problems(
    `${ID},/run/secrets/a,0600,,\n${ID2},/run/secrets/b,0600,pidfile:/run/secrets/a,HUP\n` +
      `${ID2},/run/secrets/c,0600,pidfile:/run/secrets,HUP`,
  );
  assert.deepEqual(found.map((p) => p.split(":")[0]), ["2", "3"]);
  assert.match(
    found[0],
    /pidfile "\/run\/secrets\/a" is inside "\/run\/secrets", where secrets are written/,
  );
  assert.deepEqual(entries(`${ID},/run/secrets/a,0600,pidfile:/run/nginx.pid,HUP`).length, 1);
});

Deno.test("parseMap() names every bad line, not only the first", () => {
  const text = [
    `${ID},/run/secrets/a,0600`,
    `bad,/run/secrets/b,0600`,
    `${ID},/tmp/c,0600`,
    `${ID},/run/secrets/d,9`,
  ]
    .join("\n");
  assert.deepEqual(problems(text).map((p) => p.split(":")[0]), ["2", "3", "4"]);
});

Deno.test("parseMap() rejects two lines with one path, and a path inside another line's file", () => {
  const found = problems(
    `${ID},/run/secrets/a,0600\n${ID2},/run/secrets/a,0600\n${ID2},/run/secrets/a/b,0600\n`,
  );
  assert.equal(found.length, 2);
  assert.match(found[0], /^2: path "\/run\/secrets\/a" is already written by line 1/);
  assert.match(found[1], /^3: .* inside the file "\/run\/secrets\/a" of line 1/);
});

Deno.test("parseMap() accepts a path under any of several roots", () => {
  const map = parseMap(`${ID},/srv/tls/key,0600\n${ID2},/run/secrets/a,0600\n`, {
    roots: ["/run/secrets", "/srv/tls"],
  });
  assert.equal(map.ok, true);
});

Deno.test("parseMap() takes a recipe name in the fifth column only when it is known", () => {
  const text = `${ID},/run/secrets/a,0600,web,nginx\n`;
  assert.deepEqual(parseMap(text, { roots, recipes: ["nginx"] }), {
    ok: true,
    entries: [{
      line: 1,
      secretId: ID,
      path: "/run/secrets/a",
      mode: 0o600,
      target: { kind: "container", name: "web" },
      reload: { kind: "recipe", name: "nginx" },
    }],
  });
  assert.match(problems(text)[0], /secretsync recipe list/);
});

Deno.test("parseMap() reads unit: and pidfile: targets", () => {
  assert.deepEqual(
    entries(
      `${ID},/run/secrets/a,0600,unit:nginx.service,HUP\n${ID},/run/secrets/b,0600,pidfile:/run/x.pid,HUP`,
    )
      .map((e) => e.target),
    [{ kind: "unit", name: "nginx.service" }, { kind: "pidfile", path: "/run/x.pid" }],
  );
});

Deno.test("formatProblems() names the file and the line", () => {
  assert.deepEqual(formatProblems("/etc/m.csv", [{ line: 4, message: "bad" }]), [
    "Cannot parse map /etc/m.csv line 4: bad",
  ]);
});

Deno.test("parseMap() reads a line the same with and without CSV quotes", () => {
  const plain = `  ${ID} ,/run/secrets/a b, 0640 ,web.1,SIGHUP,0:0`;
  const quoted = plain.split(",").map((f) => `"${f.trim()}"`).join(",");
  const strip = (es: Entry[]) => es.map(({ line: _, ...rest }) => rest);
  assert.deepEqual(strip(entries(quoted)), strip(entries(plain)));
});

Deno.test("parseMap() accepts any Linux signal name, as docker and podman do", () => {
  const lines = ["KILL", "sigterm", "Winch", "STOP"].map((s, i) =>
    `${ID},/run/secrets/s${i},0600,web,${s}`
  );
  assert.deepEqual(entries(lines.join("\n")).map((e) => e.reload), [
    { kind: "signal", signal: "KILL" },
    { kind: "signal", signal: "TERM" },
    { kind: "signal", signal: "WINCH" },
    { kind: "signal", signal: "STOP" },
  ]);
});
