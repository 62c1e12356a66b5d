/**
 * Test helpers for Dovecot 2.3 (Debian 12's dovecot-core + dovecot-imapd) in a container:
 * the image and a container serving IMAPS (implicit TLS) on 127.0.0.1 with
 * `ssl_cert = </run/secrets/tls.crt` and `ssl_key = </run/secrets/tls.key`. PID 1 is the
 * Dovecot master (`dovecot -F`).
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

/** The Dovecot test image built by `tests/containers/dovecot-image.sh`. */
export const DOVECOT_IMAGE = "localhost/secretsync-dovecot:test";

/** Builds {@linkcode DOVECOT_IMAGE} unless it exists. */
export function ensureDovecotImage(): Promise<void> {
  return ensureImageScript("dovecot-image.sh");
}

/** dovecot.conf: IMAPS on 127.0.0.1:`port`, static test user, log to stderr. */
export function dovecotConf(port: number): string {
  return `protocols = imap
listen = 127.0.0.1
log_path = /dev/stderr
ssl = required
ssl_cert = </run/secrets/tls.crt
ssl_key = </run/secrets/tls.key
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = ${port}
    ssl = yes
  }
}
passdb {
  driver = static
  args = password=test
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/var/mail/%u
}
mail_location = maildir:~/Maildir
`;
}

/**
 * Starts {@linkcode DOVECOT_IMAGE} with its config mounted at /etc/dovecot and waits until
 * 127.0.0.1:`port` presents a certificate. Call {@linkcode ensureDovecotImage} first.
 */
export function startDovecot(opts: StartOptions): Promise<TlsServer> {
  const port = opts.port ?? freePort();
  return startTlsServer({
    image: DOVECOT_IMAGE,
    name: "secretsync-test-dovecot",
    port,
    secretsDir: opts.secretsDir,
    configPath: "/etc/dovecot",
    configFiles: { "dovecot.conf": dovecotConf(port) },
    readyMs: opts.readyMs,
  });
}
