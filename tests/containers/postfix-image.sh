#!/usr/bin/env bash
# Builds localhost/secretsync-postfix:test from Debian 12's postfix 3.7 package: its programs
# (/usr/sbin/post*, sendmail, /usr/lib/postfix), the libraries ldd lists, busybox (the
# postfix-script shell tools), passwd/group with postfix/postdrop; no main.cf/master.cf. The files
# Postfix keeps beside main.cf (postfix-files, dynamicmaps.cf, post-install, postfix-script) live
# in meta_directory /usr/lib/postfix/meta, so postfix.ts mounts an /etc/postfix holding only
# main.cf + master.cf (smtpd TLS from /run/secrets/tls.crt + tls.key; its main.cf says
# `meta_directory = /usr/lib/postfix/meta`). PID 1 is the Postfix
# master (`postfix start-fg` execs `master -i`). Idempotent: does nothing if the image exists and
# was built by this script as it is now (FORCE=1 rebuilds).
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-postfix:test}"
# shellcheck source=rootfs-lib.sh
source "$(dirname "$(readlink -f "$0")")/rootfs-lib.sh"

begin_build

stage_packages "$stage" postfix
new_rootfs "$root"
add_user "$root" postfix 101 101
echo "postdrop:x:102:" >>"$root/etc/group"
sbins=()
for f in "$stage"/usr/sbin/*; do sbins+=("/usr/sbin/${f##*/}"); done
add_tree "$root" "$stage" /usr/lib/postfix "${sbins[@]}"
ln -s ../sbin/sendmail "$root/usr/bin/mailq"
ln -s ../sbin/sendmail "$root/usr/bin/newaliases"
rm -f "$root"/usr/lib/postfix/*.a
meta="$root/usr/lib/postfix/meta"
mkdir -p "$meta" "$root/etc/postfix" "$root/var/spool/postfix" "$root/var/lib/postfix" "$root/run/secrets"
cp -a "$stage"/etc/postfix/{postfix-files,postfix-files.d,dynamicmaps.cf.d,post-install,postfix-script} "$meta/"
: >"$meta/dynamicmaps.cf" # no dynamically loaded map types (none is shipped in the image)
: >"$root/etc/aliases"
# No configuration in the image: postfix.ts mounts /etc/postfix with main.cf and master.cf
# (postfixMainCf, postfixMasterCf), the port chosen per test.
mkdir -p "$root/etc/postfix"
# What Debian's postinst does: postdrop/postqueue set-gid postdrop (postfix check warns if not).
chown 101:101 "$root/var/lib/postfix"
chgrp 102 "$root/usr/sbin/postdrop" "$root/usr/sbin/postqueue"
chmod 2555 "$root/usr/sbin/postdrop" "$root/usr/sbin/postqueue"

import_rootfs "$root" "$IMAGE_NAME" \
  'CMD ["postfix", "start-fg"]' 'ENV PATH=/usr/sbin:/usr/bin'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
