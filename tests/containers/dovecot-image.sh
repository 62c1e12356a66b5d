#!/usr/bin/env bash
# Builds localhost/secretsync-dovecot:test from Debian 12's dovecot-core + dovecot-imapd 2.3
# packages: dovecot, doveadm, doveconf, /usr/lib/dovecot (services and plugins), the libraries ldd
# lists (liblua5.4, libexttextcat, libwrap come from their Debian packages when the host lacks
# them), busybox, passwd/group with dovecot/dovenull; no configuration (dovecot.ts mounts one
# serving IMAPS with ssl_cert/ssl_key from /run/secrets/tls.crt + tls.key). PID 1 is the Dovecot
# master (`dovecot -F`, as the official image runs it). Idempotent: does nothing if the image
# exists and was built by this script as it is now (FORCE=1 rebuilds).
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-dovecot:test}"
# shellcheck source=rootfs-lib.sh
source "$(dirname "$(readlink -f "$0")")/rootfs-lib.sh"

begin_build

stage_packages "$stage" dovecot-core dovecot-imapd
new_rootfs "$root"
add_user "$root" dovecot 103 103
add_user "$root" dovenull 104 104
add_tree "$root" "$stage" /usr/sbin/dovecot /usr/bin/doveadm /usr/bin/doveconf /usr/lib/dovecot \
  /usr/share/dovecot
mkdir -p "$root"/etc/dovecot "$root"/run/dovecot "$root"/var/lib/dovecot "$root"/var/mail \
  "$root"/run/secrets
# No configuration in the image: dovecot.ts mounts /etc/dovecot with dovecot.conf
# (dovecotConf), the port chosen per test.

import_rootfs "$root" "$IMAGE_NAME" \
  'CMD ["dovecot", "-F"]' 'ENV PATH=/usr/sbin:/usr/bin'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
