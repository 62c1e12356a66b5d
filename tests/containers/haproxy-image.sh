#!/usr/bin/env bash
# Builds localhost/secretsync-haproxy:test from Debian 12's haproxy 2.6 package: the haproxy
# binary, the libraries ldd lists (liblua5.3 and libopentracing-c-wrapper come from their Debian
# packages when the host lacks them), busybox, passwd/group and a default config at
# /usr/local/etc/haproxy/haproxy.cfg (the official image's path). PID 1 is the master-worker
# master (`haproxy -W -db -f ...`, as the official image's entrypoint does). Idempotent: does
# nothing if the image exists and was built by this script as it is now (FORCE=1 rebuilds).
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-haproxy:test}"
# shellcheck source=rootfs-lib.sh
source "$(dirname "$(readlink -f "$0")")/rootfs-lib.sh"

begin_build

stage_packages "$stage" haproxy
new_rootfs "$root"
add_user "$root" haproxy 99 99
add_binaries "$root" "$stage" /usr/sbin/haproxy
mkdir -p "$root"/usr/local/etc/haproxy "$root"/run/haproxy "$root"/var/lib/haproxy "$root"/run/secrets
# Default config; tests usually mount their own directory over /usr/local/etc/haproxy.
cat >"$root/usr/local/etc/haproxy/haproxy.cfg" <<'CONF'
global
  ssl-load-extra-del-ext
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:8443 ssl crt /run/secrets/tls.crt
  http-request return status 200 content-type text/plain string ok
CONF

import_rootfs "$root" "$IMAGE_NAME" \
  'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
  'STOPSIGNAL SIGUSR1' 'ENV PATH=/usr/local/sbin:/usr/sbin:/usr/bin'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
