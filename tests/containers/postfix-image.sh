#!/usr/bin/env bash
# Builds localhost/secretsync-postfix:test from Debian 12's postfix 3.7 package: its programs
# (/usr/sbin/post*, sendmail, /usr/lib/postfix), the libraries ldd lists, busybox (the
# postfix-script shell tools), passwd/group with postfix/postdrop, and a default main.cf/master.cf
# with smtpd TLS from /run/secrets/tls.crt + tls.key. The files Postfix keeps beside main.cf
# (postfix-files, dynamicmaps.cf, post-install, postfix-script) live in meta_directory
# /usr/lib/postfix/meta, so a test can mount its own /etc/postfix with only main.cf + master.cf
# (its main.cf must then say `meta_directory = /usr/lib/postfix/meta`). PID 1 is the Postfix
# master (`postfix start-fg` execs `master -i`). Idempotent: does nothing if the image exists and
# was built by this script as it is now (FORCE=1 rebuilds).
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-postfix:test}"
# shellcheck source=nginx-image-lib.sh
source "$(dirname "$(readlink -f "$0")")/nginx-image-lib.sh"

if [[ "${FORCE:-}" != 1 ]] && image_current "$IMAGE_NAME"; then
  log "up to date, skipping"
  exit 0
fi
start=$SECONDS
ensure_tools
work="$(mktemp -d /tmp/secretsync-postfix-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
stage="$work/stage"

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
# Default config; tests usually mount their own directory over /etc/postfix (port chosen then).
cat >"$root/etc/postfix/main.cf" <<'CONF'
compatibility_level = 3.6
meta_directory = /usr/lib/postfix/meta
myhostname = mail.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
maillog_file = /dev/stdout
# a test image: never look up or deliver anything
default_transport = error:test image delivers no mail
local_transport = error:test image delivers no mail
smtp_dns_support_level = disabled
smtpd_tls_cert_file = /run/secrets/tls.crt
smtpd_tls_key_file = /run/secrets/tls.key
smtpd_tls_security_level = may
CONF
cat >"$root/etc/postfix/master.cf" <<'CONF'
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:2525 inet n   -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
# What Debian's postinst does: postdrop/postqueue set-gid postdrop (postfix check warns if not).
chown 101:101 "$root/var/lib/postfix"
chgrp 102 "$root/usr/sbin/postdrop" "$root/usr/sbin/postqueue"
chmod 2555 "$root/usr/sbin/postdrop" "$root/usr/sbin/postqueue"

import_rootfs "$root" "$IMAGE_NAME" \
  'CMD ["postfix", "start-fg"]' 'ENV PATH=/usr/sbin:/usr/bin'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
