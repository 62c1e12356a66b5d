/**
 * The decisions of `doctor` on plain data, and the readers of `findmnt` and `systemctl show`
 * output. The command itself is tested end to end in tests/e2e/doctor_e2e_test.ts.
 */
import assert from "node:assert/strict";
import {
  certificateChecks,
  containerMountCheck,
  doctorExitCode,
  formatCheck,
  ownershipCheck,
  rootCheck,
  timerCheck,
} from "../src/doctor.ts";
import { mountOf, parseFindmnt } from "../src/mounts.ts";
import { parseSystemdTime, parseTimerShow, readTimer } from "../src/timer.ts";

Deno.test("ownershipCheck() fails a file another user owns or others can write", () => {
  assert.equal(ownershipCheck("map", "/m", { uid: 0, mode: 0o100644 }, 0).level, "ok");
  assert.equal(ownershipCheck("map", "/m", { uid: 1000, mode: 0o100600 }, 1000).level, "ok");
  const foreign = ownershipCheck("map", "/m", { uid: 1000, mode: 0o100644 }, 0);
  assert.equal(foreign.level, "fail");
  assert.match(foreign.message, /it is owned by uid 1000, not by uid 0/);
  assert.equal(foreign.fix, "chown root: /m");
  const writable = ownershipCheck("map", "/m", { uid: 0, mode: 0o100664 }, 0);
  assert.equal(writable.level, "fail");
  assert.match(writable.message, /mode 0664 lets group or others write it/);
  assert.equal(writable.fix, "chmod go-w /m");
});

Deno.test("rootCheck(): tmpfs is ok, a disk is a warning, an unsafe directory fails", () => {
  const tmpfs = { target: "/run/secrets", fstype: "tmpfs", options: ["rw", "mode=700"] };
  assert.equal(rootCheck("/run/secrets", [], tmpfs).level, "ok");
  const disk = rootCheck("/srv/secrets", [], { target: "/", fstype: "ext4", options: [] });
  assert.equal(disk.level, "warn");
  assert.match(disk.message, /on ext4 \(mounted at \/\): secrets written there reach the disk/);
  assert.match(disk.fix ?? "", /mount -t tmpfs/);
  const unsafe = rootCheck(
    "/run/secrets",
    ['Root "/run/secrets" cannot be used: mode 0777'],
    tmpfs,
  );
  assert.equal(unsafe.level, "fail");
  assert.equal(rootCheck("/x", [], new Error("findmnt not found")).level, "warn");
});

Deno.test("containerMountCheck() tells a directory mount from a single-file mount", async (t) => {
  const paths = ["/run/secrets/web/tls.crt", "/run/secrets/web/tls.key"];
  await t.step("the directory (or a parent) mounted: ok", () => {
    const r = containerMountCheck("web", paths, [
      { type: "bind", source: "/run/secrets/web", destination: "/etc/tls" },
    ]);
    assert.equal(r.level, "ok", r.message);
    assert.equal(
      containerMountCheck("web", paths, [{
        type: "bind",
        source: "/run/secrets",
        destination: "/s",
      }])
        .level,
      "ok",
    );
  });
  await t.step("one file mounted on its own: fail, and says why", () => {
    const r = containerMountCheck("web", paths, [
      { type: "bind", source: "/run/secrets/web", destination: "/etc/tls" },
      { type: "bind", source: "/run/secrets/web/tls.key", destination: "/key.pem" },
    ]);
    assert.equal(r.level, "fail");
    assert.match(
      r.message,
      /mounts \/run\/secrets\/web\/tls.key \(at \/key.pem\) as a single file/,
    );
    assert.match(r.message, /never see a new version/);
    assert.match(r.fix ?? "", /mount the directory instead/);
  });
  await t.step("nothing mounted, or a sibling directory: fail", () => {
    assert.equal(containerMountCheck("web", paths, []).level, "fail");
    const sibling = containerMountCheck("web", paths, [
      { type: "bind", source: "/run/secrets/web2", destination: "/x" },
    ]);
    assert.equal(sibling.level, "fail");
    assert.match(sibling.message, /does not mount the directory/);
  });
  await t.step("no such container: fail", () => {
    assert.match(containerMountCheck("web", paths, null).message, /no such container/);
  });
});

Deno.test("timerCheck() from what systemctl show printed", () => {
  const show = (unitFileState: string, activeState: string, next = "") =>
    parseTimerShow(
      `LoadState=loaded\nUnitFileState=${unitFileState}\nActiveState=${activeState}\nNextElapseUSecRealtime=${next}\n`,
    );
  const ok = timerCheck(show("enabled", "active", "Wed 2026-12-02 12:00:00 UTC"));
  assert.equal(ok.level, "ok");
  assert.match(ok.message, /next run 2026-12-02T12:00:00.000Z/);
  assert.equal(timerCheck(show("disabled", "inactive")).level, "fail");
  assert.equal(timerCheck(parseTimerShow("LoadState=not-found\nUnitFileState=\n")).level, "warn");
  assert.equal(timerCheck({ available: false, reason: "no systemd" }).level, "warn");
});

Deno.test("parseSystemdTime() reads the forms systemctl prints", () => {
  assert.equal(
    parseSystemdTime("Wed 2026-12-02 12:00:00 UTC")?.toISOString(),
    "2026-12-02T12:00:00.000Z",
  );
  assert.equal(parseSystemdTime("@1764676800")?.toISOString(), "2025-12-02T12:00:00.000Z");
  assert.equal(
    parseSystemdTime("Wed 2026-12-02 13:00:00 +0100")?.toISOString(),
    "2026-12-02T12:00:00.000Z",
  );
  assert.equal(parseSystemdTime("n/a"), undefined);
  assert.equal(parseSystemdTime(""), undefined);
  assert.equal(parseSystemdTime("Wed 2026-12-02 13:00:00 CET"), undefined);
});

Deno.test("readTimer() never throws: a missing systemctl or a host without systemd is an answer", async () => {
  const missing = await readTimer({ bin: "/nonexistent/systemctl" });
  assert.equal(missing.available, false);
  // This machine has systemctl but no systemd as PID 1 (CI containers alike), or a real one.
  const real = await readTimer();
  assert.ok(real.available === false || typeof real.activeState === "string");
});

Deno.test("certificateChecks(): expired fails, soon warns, later is ok", () => {
  const now = new Date("2026-12-02T00:00:00Z");
  const [expired, soon, later] = certificateChecks([
    { path: "/a", notAfter: new Date("2026-12-01T00:00:00Z") },
    { path: "/b", notAfter: new Date("2026-12-12T00:00:00Z") },
    { path: "/c", notAfter: new Date("2027-06-01T00:00:00Z") },
  ], now);
  assert.deepEqual([expired.level, soon.level, later.level], ["fail", "warn", "ok"]);
  assert.match(soon.message, /in 10 days/);
});

Deno.test("formatCheck() and doctorExitCode()", () => {
  const fail = { level: "fail" as const, subject: "map", message: "bad", fix: "fix it" };
  assert.equal(formatCheck(fail), "FAIL map: bad — fix it");
  assert.equal(formatCheck({ level: "ok", subject: "auth", message: "fine" }), "ok   auth: fine");
  assert.equal(doctorExitCode([{ level: "warn", subject: "x", message: "y" }]), 0);
  assert.equal(doctorExitCode([fail]), 1);
});

Deno.test("mountOf() finds the filesystem of a real path; parseFindmnt() takes the top mount", async () => {
  const shm = await mountOf("/dev/shm");
  assert.equal(shm.fstype, "tmpfs");
  assert.equal(shm.target, "/dev/shm");
  const stacked = parseFindmnt(
    '{"filesystems":[{"target":"/r","fstype":"ext4","options":"rw"},{"target":"/r","fstype":"tmpfs","options":"rw,mode=700"}]}',
  );
  assert.deepEqual(stacked, { target: "/r", fstype: "tmpfs", options: ["rw", "mode=700"] });
  assert.throws(() => parseFindmnt('{"filesystems":[]}'));
  await assert.rejects(
    mountOf("/dev/shm", { bin: "/nonexistent/findmnt" }),
    /could not be started/,
  );
});
