/**
 * Postfix: `postfix check`, then `postfix reload` in the container. Facts checked against the
 * Postfix manual pages and shown on Debian 12's Postfix 3.7 by
 * `tests/containers/servers_test.ts` and `tests/e2e/recipes_e2e_test.ts`.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const postfix: RecipeSpec = {
  name: "postfix",
  description: "Postfix: `postfix check`, then `postfix reload` in the container",
  images: ["any image running the Postfix master (`postfix start-fg`), e.g. boky/postfix"],
  validate: ["postfix", "check"],
  reload: { exec: ["postfix", "reload"] },
  notes: [
    "`postfix reload` makes the master re-read its configuration (a HUP to the master); new " +
    "smtpd processes load the new certificate, running ones finish first. It works whatever " +
    "PID 1 is, as long as the master runs in the container and the command runs as root.",
    "`postfix check` only checks ownership and permissions of Postfix's own files. It does NOT " +
    "load certificates: a certificate that is not PEM, or a key of another certificate, passes " +
    "it (seen with Postfix 3.7), and after the reload smtpd disables TLS: STARTTLS is answered " +
    "with `454 4.7.0 TLS not available due to local problem`. Nothing keeps the old " +
    "certificate. Make sure what goes into the vault is a matching pair.",
    "Without a reload a new certificate reaches clients only as smtpd processes are replaced " +
    "(max_idle, 100 s by default, and max_use).",
    "Key files: readable by root only; a certificate kept apart from its key may be " +
    "world-readable.",
    "There is no official Postfix image; the recipe fits any image whose `postfix` command " +
    "controls the running master. unit: targets run `systemctl reload NAME`.",
  ],
  sources: [
    {
      url: "https://www.postfix.org/postfix.1.html",
      fact: "reload: Re-read configuration files. Running processes terminate at their " +
        "earliest convenience.",
    },
    {
      url: "https://www.postfix.org/postfix.1.html",
      fact: "check: Warn about bad directory/file ownership or permissions, and create missing " +
        "directories.",
    },
    {
      url: "https://www.postfix.org/master.8.html",
      fact: 'Upon receipt of a HUP signal (e.g., after "postfix reload"), the master process ' +
        "re-reads its configuration files.",
    },
    {
      url: "https://www.postfix.org/TLS_README.html",
      fact: "If the key is stored separately, this access restriction applies to the key file " +
        'only, and the certificate file may be "world-readable".',
    },
  ],
};

export default postfix;
