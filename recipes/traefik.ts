/**
 * Traefik: never signalled. It does not notice certificate file changes, and exits on HUP
 * (v1, v2, and some 3.x set-ups). Facts checked against Traefik's source and issue tracker.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const traefik: RecipeSpec = {
  name: "traefik",
  description: "Traefik: sends nothing (it may exit on HUP); make its file provider reload",
  images: ["traefik", "docker.io/library/traefik"],
  reload: {
    none: "Traefik does not notice changed certificate files and may exit on HUP, so nothing " +
      "was sent: the new certificate is used when the file provider reloads its dynamic " +
      "configuration, or after a restart (see `secretsync recipe show traefik`)",
  },
  neverSignals: ["HUP", "INT", "TERM"],
  notes: [
    "The file provider watches its dynamic configuration, not the certificate files that " +
    "configuration names. When it does reload, it reads the certificate and key contents " +
    "again, so the new certificate is used from then on.",
    "Best set-up: keep the dynamic configuration file that names the certificates (tls.yml) in " +
    "the same directory as the certificate files and point `providers.file.directory` at it " +
    "(watch is on by default). With `directory`, any change in that directory reloads, so " +
    "secretsync's rename of the certificate is itself the trigger, and this recipe's warning " +
    "can be ignored. (From Traefik's source; not tested here.)",
    "Otherwise rewrite or touch the dynamic configuration file after the certificate changes, " +
    'for example a user recipe with `"exec": ["touch", "/etc/traefik/dynamic/tls.yml"]` when ' +
    "that file is writable in the container, or restart the container.",
    "HUP: Traefik v1 and v2 do not handle it, and Go's default for HUP is to exit. Traefik " +
    "3.0 added a reload on HUP for the file provider, but a 3.x report says HUP still kills " +
    "it in some set-ups. So this recipe never sends HUP (nor INT or TERM); a user recipe may " +
    "choose HUP after testing it on its Traefik version.",
  ],
  sources: [
    {
      url: "https://github.com/traefik/traefik/blob/v2.11/pkg/provider/file/file.go",
      fact: "addWatcher: watcher.Add(directory); with filename, only events for that file name " +
        "call the callback, with directory every event does. flattenCertificates replaces " +
        "CertFile/KeyFile with the file contents on each load.",
    },
    {
      url: "https://github.com/traefik/traefik/issues/5495",
      fact: "Manually reload tls certificates (open): changed certificate files are not " +
        "picked up without a change to the dynamic configuration or a restart.",
    },
    {
      url: "https://pkg.go.dev/os/signal",
      fact: "By default [...] A SIGHUP, SIGINT, or SIGTERM signal causes the program to exit.",
    },
    {
      url: "https://github.com/traefik/traefik/issues/1660",
      fact: "Kill -HUP kills traefik.",
    },
    {
      url: "https://github.com/traefik/traefik/issues/11624",
      fact: "SIGHUP kills the service on 3.x line instead of reloading the configuration.",
    },
    {
      url: "https://github.com/traefik/traefik/pull/9993",
      fact: "feat: reload file config on SIGHUP (Traefik 3.0).",
    },
  ],
};

export default traefik;
