/**
 * PostgreSQL ≥ 10: HUP to the postmaster re-reads the SSL files. Facts checked against the
 * PostgreSQL documentation. Not run against a real server here.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const postgres: RecipeSpec = {
  name: "postgres",
  description: "PostgreSQL >= 10: HUP to the postmaster (PID 1), which re-reads the SSL files",
  images: ["postgres", "docker.io/library/postgres"],
  reload: { signal: "HUP" },
  neverSignals: ["TERM", "INT", "QUIT"],
  notes: [
    "HUP is what `pg_ctl reload` and `SELECT pg_reload_conf()` send. Since PostgreSQL 10 the " +
    "server re-reads ssl_cert_file and ssl_key_file on reload; before 10 only a restart did.",
    "No validation: PostgreSQL has no command that checks the SSL files. A broken pair is " +
    "ignored at reload and the old SSL configuration stays in use, but the server would refuse " +
    "to start with it, so make sure what goes into the vault is a matching pair.",
    "The key must not be readable by group or others: mode 0600 owned by the postgres user of " +
    "the image (the map's sixth column), or 0640 owned by root with the postgres group. A " +
    "passphrase-protected key blocks reloading SSL.",
    "PID 1 is the postmaster in the official image (its entrypoint ends with `exec`). Never " +
    "sends TERM, INT or QUIT: those are the smart, fast and immediate shutdowns.",
  ],
  sources: [
    {
      url: "https://www.postgresql.org/docs/current/ssl-tcp.html",
      fact: "The server reads these files at server start and whenever the server " +
        "configuration is reloaded. [...] if an error is detected during a configuration " +
        "reload, the files are ignored and the old SSL configuration continues to be used.",
    },
    {
      url: "https://github.com/postgres/postgres/commit/de41869b64d57160f58852eab20a27f248188135",
      fact: "Allow SSL configuration to be updated at SIGHUP. It is no longer necessary to " +
        "restart the server to enable, disable, or reconfigure SSL. (PostgreSQL 10)",
    },
    {
      url: "https://www.postgresql.org/docs/current/app-pg-ctl.html",
      fact: "reload mode simply sends the postgres server process a SIGHUP signal, causing it " +
        "to reread its configuration files.",
    },
    {
      url: "https://www.postgresql.org/docs/current/ssl-tcp.html",
      fact: "the permissions on server.key must disallow any access to world or group [...] " +
        "Alternatively, the file can be owned by root and have group read access (that is, " +
        "0640 permissions).",
    },
    {
      url: "https://www.postgresql.org/docs/current/server-shutdown.html",
      fact: "SIGTERM: Smart Shutdown mode. SIGINT: Fast Shutdown mode. SIGQUIT: Immediate " +
        "Shutdown mode.",
    },
  ],
};

export default postgres;
