/**
 * OpenLDAP slapd: never signalled. slapd shuts down on HUP (the original tool's cheat sheet
 * said it reloads: it does not). Facts checked against the OpenLDAP source and manual pages.
 *
 * @module
 */
import type { RecipeSpec } from "../src/recipes.ts";

const openldap: RecipeSpec = {
  name: "openldap",
  description: "OpenLDAP slapd: sends nothing (HUP shuts slapd down); restart, or modify cn=config",
  images: ["bitnami/openldap", "osixia/openldap", "any image running slapd"],
  reload: {
    none: "slapd has no reload signal (HUP shuts it down), so nothing was sent: the new files " +
      "take effect when slapd restarts, or when a cn=config modify of its olcTLS* attributes " +
      "rebuilds the TLS context (see `secretsync recipe show openldap`)",
  },
  neverSignals: ["HUP", "INT", "TERM", "USR2"],
  notes: [
    "slapd installs its shutdown handler for HUP, INT, TERM and USR2. HUP is not a reload: with " +
    "the default configuration it stops slapd, and with olcGentleHUP it stops listening and " +
    "exits once the last client has gone. The original tool's cheat sheet said OpenLDAP reloads " +
    "on HUP; following it takes the directory down. This recipe never sends a signal, and a " +
    "map line asking for HUP, INT, TERM or USR2 on a target reloaded with it is rejected.",
    "What the run does instead: it writes the files, sends nothing, and logs a warning naming " +
    "the target. The new certificate is used after a restart of slapd (a container restart is " +
    "the operator's decision; secretsync never restarts anything).",
    "Without a restart: any modify of a global olcTLS* attribute in cn=config makes slapd free " +
    "its TLS context and build a new one from the files. Replacing olcTLSCertificateFile and " +
    "olcTLSCertificateKeyFile with their current values in one modify is enough. That needs " +
    "ldap-utils in the image and write access to cn=config (usually ldapi:/// with SASL " +
    "EXTERNAL as root), which images differ on, so it is a user recipe, for example " +
    '`"exec": ["ldapmodify", "-Y", "EXTERNAL", "-H", "ldapi:///", "-f", ' +
    '"/etc/ldap/reload-tls.ldif"]` with that LDIF in the image. Not tested here; if the new ' +
    "files are bad the modify fails, and treat slapd as needing a restart then.",
    "`slaptest -u` checks the configuration only, not the certificate files, so this recipe " +
    "has no validation.",
  ],
  sources: [
    {
      url:
        "https://git.openldap.org/openldap/openldap/-/blob/OPENLDAP_REL_ENG_2_6/servers/slapd/main.c",
      fact: "(void) SIGNAL( LDAP_SIGUSR2, slap_sig_shutdown ); ... (void) SIGNAL( SIGHUP, " +
        "slap_sig_shutdown ); (void) SIGNAL( SIGINT, slap_sig_shutdown ); (void) SIGNAL( " +
        "SIGTERM, slap_sig_shutdown );",
    },
    {
      url: "https://www.openldap.org/software/man.cgi?query=slapd-config",
      fact: "olcGentleHUP: { TRUE | FALSE } A SIGHUP signal will only cause a 'gentle' " +
        "shutdown-attempt: Slapd will stop listening for new connections, but will not close " +
        "the connections to the current clients. [...] Slapd terminates when all clients have " +
        "closed their connections.",
    },
    {
      url:
        "https://git.openldap.org/openldap/openldap/-/blob/OPENLDAP_REL_ENG_2_6/servers/slapd/bconfig.c",
      fact: "config_tls_cleanup(): ldap_pvt_tls_ctx_free( slap_tls_ctx ); /* Force new ctx to " +
        "be created */ rc = ldap_pvt_tls_set_option( slap_tls_ld, LDAP_OPT_X_TLS_NEWCTX, &opt " +
        "); registered with config_push_cleanup( c, config_tls_cleanup ) by the olcTLS* " +
        "handlers.",
    },
    {
      url: "https://www.openldap.org/software/man.cgi?query=slapd-config",
      fact: "The config backend [...] provides the ability to change the configuration " +
        "dynamically at runtime.",
    },
  ],
};

export default openldap;
