/**
 * Test helpers for HAProxy 2.6 (Debian 12's package) in a container: the image and a
 * container serving TLS on 127.0.0.1 in master-worker mode (PID 1 is the master, as with
 * the official image's `haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg`).
 *
 * Two ways to hand HAProxy its certificate, both tested:
 * - `"split"` (default): `crt /run/secrets/tls.crt` with `ssl-load-extra-del-ext` in
 *   `global`, so HAProxy loads the key from `tls.key` beside it (2.2+; the default
 *   `ssl-load-extra-files all` includes `key`). The same two files nginx reads.
 * - `"combined"`: `crt /run/secrets/haproxy.pem`, certificate and key in one PEM.
 *
 * @module
 */

import {
  ensureImageScript,
  freePort,
  type StartOptions,
  startTlsServer,
  type TlsServer,
} from "./nginx.ts";

/** The HAProxy test image built by `tests/containers/haproxy-image.sh`. */
export const HAPROXY_IMAGE = "localhost/secretsync-haproxy:test";

/** Where the image (like the official one) reads its configuration. */
export const HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg";

/** How the certificate reaches HAProxy: see the module doc. */
export type HaproxyPemLayout = "split" | "combined";

/** Builds {@linkcode HAPROXY_IMAGE} unless it exists. */
export function ensureHaproxyImage(): Promise<void> {
  return ensureImageScript("haproxy-image.sh");
}

/** haproxy.cfg: master-worker, TLS on 127.0.0.1:`port`, answers 200 itself. */
export function haproxyCfg(port: number, layout: HaproxyPemLayout = "split"): string {
  const crt = layout === "split"
    ? "crt /run/secrets/tls.crt" // + tls.key, thanks to ssl-load-extra-del-ext
    : "crt /run/secrets/haproxy.pem";
  return `global
  master-worker
${layout === "split" ? "  ssl-load-extra-del-ext\n" : ""}defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:${port} ssl ${crt}
  http-request return status 200 content-type text/plain string ok
`;
}

/**
 * Starts {@linkcode HAPROXY_IMAGE} with its config mounted at /usr/local/etc/haproxy. Call
 * {@linkcode ensureHaproxyImage} first; with `layout: "combined"`, /run/secrets/haproxy.pem
 * must exist (see `installCertPair`'s `combined`).
 */
export function startHaproxy(
  opts: StartOptions & { layout?: HaproxyPemLayout },
): Promise<TlsServer> {
  const port = opts.port ?? freePort();
  return startTlsServer({
    image: HAPROXY_IMAGE,
    name: "secretsync-test-haproxy",
    port,
    secretsDir: opts.secretsDir,
    configPath: "/usr/local/etc/haproxy",
    configFiles: { "haproxy.cfg": haproxyCfg(port, opts.layout) },
    cmd: ["haproxy", "-W", "-db", "-f", HAPROXY_CFG],
    readyMs: opts.readyMs,
  });
}
