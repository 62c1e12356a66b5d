/**
 * Dovecot: `doveconf -x`, then `doveadm reload` in the container. Facts checked against the
 * Dovecot manual pages and shown on Debian 12's Dovecot 2.3 by
 * `tests/containers/servers_test.ts` and `tests/e2e/recipes_e2e_test.ts`.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const dovecot: RecipeSpec = {
  name: "dovecot",
  description: "Dovecot: `doveconf -x` (files readable), then `doveadm reload` in the container",
  images: ["dovecot/dovecot"],
  validate: ["doveconf", "-x"],
  reload: { exec: ["doveadm", "reload"] },
  notes: [
    "`doveadm reload` makes the master (PID 1 with `dovecot -F`) re-read its configuration, " +
    "including `ssl_cert = </run/secrets/...` file contents; new connections get the new " +
    "certificate.",
    "`doveconf -x` expands `<file` settings, so it fails when a certificate or key file is " +
    "missing or unreadable (exit 89). It does not parse the PEM: a broken certificate or a key " +
    "of another certificate passes, and after the reload TLS handshakes fail (seen with " +
    "Dovecot 2.3). Make sure what goes into the vault is a matching pair. (doveconf hides " +
    "ssl_key unless -P is given; secretsync shows only the validator's error output anyway.)",
    "Sessions: with shutdown_clients = no, existing sessions keep the old settings after a " +
    "reload; by default they may be shut down, and clients reconnect.",
    "Dovecot 2.4 images use a new configuration language and run rootless (uid 1000 as vmail): " +
    "key files must be readable by that uid. Tested with 2.3 only. unit: targets run " +
    "`systemctl reload NAME`.",
  ],
  sources: [
    {
      url: "https://doc.dovecot.org/2.3/man/dovecot.1/",
      fact: "reload: Force dovecot to reload its configuration. When shutdown_clients is set to " +
        "no, existing sessions will continue to use the old settings, after a dovecot reload.",
    },
    {
      url: "https://github.com/dovecot/core/blob/release-2.3/doc/man/doveconf.1.in",
      fact: "-x Expand configuration variables (e.g. $mail_plugins) and show file contents " +
        "(from e.g. ssl_cert = </etc/ssl/certs/dovecot.pem).",
    },
    {
      url: "https://github.com/dovecot/core/blob/release-2.3/doc/man/doveadm.1.in",
      fact: "reload: Force dovecot(1) to reload the configuration.",
    },
    {
      url: "https://github.com/dovecot/core/releases/tag/2.4.0",
      fact: "New 2.4 packages are not compatible with old 2.3 configuration. Docker images are " +
        "now run rootless, with UID 1000 as vmail.",
    },
  ],
};

export default dovecot;
