/**
 * HAProxy in master-worker mode: check the configuration, then HUP the master. Facts checked
 * against the HAProxy 2.6 management guide and the official image's documentation, and shown
 * on Debian 12's HAProxy 2.6 by `tests/containers/servers_test.ts` and
 * `tests/e2e/recipes_e2e_test.ts`.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const haproxy: RecipeSpec = {
  name: "haproxy",
  description:
    "HAProxy (master-worker, -W): `haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg`, then HUP",
  images: [
    "haproxy",
    "docker.io/library/haproxy",
    "haproxytech/haproxy-alpine",
    "haproxytech/haproxy-debian",
    "haproxytech/haproxy-ubuntu",
  ],
  validate: ["haproxy", "-c", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
  reload: { signal: "HUP" },
  neverSignals: ["USR1", "TERM", "INT"],
  notes: [
    "Needs master-worker mode, with the master as PID 1: the official image's entrypoint runs " +
    "`haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg`. On HUP (or USR2; both work on " +
    "2.6) the master re-reads the configuration and certificates and starts a new worker; the " +
    "old worker finishes its connections.",
    "If the new certificate cannot be loaded, the master logs `Loading failure!` and keeps the " +
    "old worker serving the old certificate; the signal itself still succeeds. `haproxy -c` " +
    "runs first and fails on a certificate that is not PEM, truncated, or does not match its " +
    "key (exit 1, seen with HAProxy 2.6): then nothing is signalled and the run exits 1.",
    "The validation reads the official image's configuration path. An image or deployment with " +
    "another path needs a user recipe with its own `validate`. `haproxy -c` does not check " +
    "expiry.",
    "Certificate files on 2.6: one PEM with certificate and key (`crt /run/secrets/site.pem`), " +
    "or `tls.crt` + `tls.key` side by side with `ssl-load-extra-del-ext` in `global`. Since 2.4 " +
    "the official image runs as user haproxy: the key must be readable by that user (the map's " +
    "sixth column).",
    "The runtime API (`set ssl cert` + `commit ssl cert`) swaps a certificate without any " +
    "reload; it needs an admin stats socket and is not what this recipe does.",
    "unit: targets run `systemctl reload NAME` (Debian's haproxy.service checks the " +
    "configuration with -c in its ExecReload). Never sends USR1 (soft stop), TERM or INT.",
  ],
  sources: [
    {
      url: "https://docs.haproxy.org/2.6/management.html",
      fact: "-W : master-worker mode. [...] Using this mode, you can reload HAProxy directly by " +
        "sending a SIGUSR2 signal to the master.",
    },
    {
      url: "https://www.mail-archive.com/haproxy@formilux.org/msg26283.html",
      fact: "The master-worker will reload itself on SIGUSR2/SIGHUP [...] The SIGUSR1 signal is " +
        "forwarded to the children to soft-stop HAProxy. The SIGTERM and SIGINT signals are " +
        "forwarded to the children in order to terminate them.",
    },
    {
      url: "https://hub.docker.com/_/haproxy",
      fact: "Reloading config: you can use HAProxy's graceful reload feature by sending a SIGHUP " +
        "to the container (docker kill -s HUP my-running-haproxy); config at " +
        "/usr/local/etc/haproxy/haproxy.cfg.",
    },
    {
      url: "https://docs.haproxy.org/2.6/management.html",
      fact: "-c : only performs a check of the configuration files and exits before trying to " +
        "bind. The exit status is zero if everything is OK, or non-zero if an error is " +
        "encountered.",
    },
    {
      url: "https://docs.haproxy.org/2.6/management.html",
      fact: "In case the last reload failed, the master prompt will be changed to " +
        '"master[ReloadFailed]>" so that it becomes visible that the process is still running ' +
        "on the previous configuration.",
    },
  ],
};

export default haproxy;
