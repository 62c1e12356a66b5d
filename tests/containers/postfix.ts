/**
 * Test helpers for Postfix 3.7 (Debian 12's package) in a container: the image and a
 * container whose smtpd offers STARTTLS on 127.0.0.1 with /run/secrets/tls.crt + tls.key.
 * PID 1 is the Postfix master (`postfix start-fg` ends in `exec master -i`).
 *
 * The helper mounts its own /etc/postfix holding only main.cf and master.cf; the files
 * Postfix keeps beside them live in the image's meta_directory, /usr/lib/postfix/meta.
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

/** The Postfix test image built by `tests/containers/postfix-image.sh`. */
export const POSTFIX_IMAGE = "localhost/secretsync-postfix:test";

/** Builds {@linkcode POSTFIX_IMAGE} unless it exists. */
export function ensurePostfixImage(): Promise<void> {
  return ensureImageScript("postfix-image.sh");
}

/** main.cf: smtpd TLS from /run/secrets, no delivery, no DNS, log to stdout. */
export function postfixMainCf(): string {
  return `compatibility_level = 3.6
meta_directory = /usr/lib/postfix/meta
myhostname = mail.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
maillog_file = /dev/stdout
default_transport = error:test image delivers no mail
local_transport = error:test image delivers no mail
smtp_dns_support_level = disabled
smtpd_tls_cert_file = /run/secrets/tls.crt
smtpd_tls_key_file = /run/secrets/tls.key
smtpd_tls_security_level = may
`;
}

/** master.cf: smtpd on 127.0.0.1:`port`, the usual internal services, no chroot. */
export function postfixMasterCf(port: number): string {
  return `127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

/**
 * Starts {@linkcode POSTFIX_IMAGE} and waits until STARTTLS on 127.0.0.1:`port` presents a
 * certificate. Call {@linkcode ensurePostfixImage} first.
 */
export function startPostfix(opts: StartOptions): Promise<TlsServer> {
  const port = opts.port ?? freePort();
  return startTlsServer({
    image: POSTFIX_IMAGE,
    name: "secretsync-test-postfix",
    port,
    secretsDir: opts.secretsDir,
    configPath: "/etc/postfix",
    configFiles: { "main.cf": postfixMainCf(), "master.cf": postfixMasterCf(port) },
    probe: { starttls: "smtp" },
    readyMs: opts.readyMs,
  });
}
