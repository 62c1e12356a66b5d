/**
 * nginx: test the configuration, then HUP the master. Facts checked against nginx.org and
 * shown on Debian 12's nginx 1.22 by `tests/containers/servers_test.ts` and
 * `tests/e2e/recipes_e2e_test.ts`.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const nginx: RecipeSpec = {
  name: "nginx",
  description: "nginx: `nginx -t` in the container, then HUP to the master (PID 1)",
  images: ["nginx", "docker.io/library/nginx", "nginxinc/nginx-unprivileged"],
  validate: ["nginx", "-t"],
  reload: { signal: "HUP" },
  neverSignals: ["TERM", "INT", "QUIT", "WINCH"],
  notes: [
    "On HUP the master re-reads its configuration, certificates included, starts new workers " +
    "and lets the old ones finish their connections (which keep the old certificate until " +
    "they close).",
    "If the new certificate or key cannot be loaded, the master keeps the old configuration and " +
    "only logs `[emerg]`; `podman kill`/`docker kill` still succeeds, so without validation the " +
    "failure would be silent. `nginx -t` runs first and fails on a certificate that is not PEM, " +
    "truncated, or does not match its key (exit 1, seen with nginx 1.22): then nothing is " +
    "signalled and the run exits 1.",
    "`nginx -t` does not check expiry: an expired certificate passes and is served.",
    "PID 1 must be the nginx master, as in the official images (`nginx -g 'daemon off;'`). For " +
    "an image that starts nginx under a shell or supervisor, write a user recipe with " +
    '`"exec": ["nginx", "-s", "reload"]` (which also refuses a configuration that fails to load).',
    "nginxinc/nginx-unprivileged runs nginx as a non-root user: give the key that user's uid " +
    "(the map's sixth column) or a mode it can read.",
    "unit: targets run `systemctl reload NAME`, the unit's ExecReload (Debian's nginx.service " +
    "uses `nginx -s reload`, which parses the configuration first and signals nothing if it " +
    "fails). pidfile: targets get HUP without `nginx -t`; the master still refuses a broken " +
    "configuration, silently.",
    "Never sends TERM, INT (fast shutdown), QUIT (graceful shutdown) or WINCH (stops the " +
    "workers): a map line asking for one of them on a target reloaded with this recipe is " +
    "rejected.",
  ],
  sources: [
    {
      url: "https://nginx.org/en/docs/control.html",
      fact: "In order for nginx to re-read the configuration file, a HUP signal should be sent " +
        "to the master process. The master process first checks the syntax validity, then " +
        "tries to apply new configuration [...] If this fails, it rolls back changes and " +
        "continues to work with old configuration.",
    },
    {
      url: "https://nginx.org/en/docs/control.html",
      fact: "TERM, INT: fast shutdown; QUIT: graceful shutdown; WINCH: graceful shutdown of " +
        "worker processes. Old worker processes close listen sockets and continue to service " +
        "old clients.",
    },
    {
      url: "https://nginx.org/en/docs/switches.html",
      fact: "-t — test the configuration file: nginx checks the configuration for correct " +
        "syntax, and then tries to open files referred in the configuration.",
    },
  ],
};

export default nginx;
