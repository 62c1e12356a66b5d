#!/usr/bin/env bash
# Builds localhost/secretsync-nginx:test from Debian 12's nginx package: the nginx binary, the
# libraries ldd lists, busybox, passwd/group, and a default config that serves TLS from
# /run/secrets/tls.crt + /run/secrets/tls.key. Idempotent: does nothing if the image exists and
# was built by this script as it is now (FORCE=1 rebuilds). PID 1 is the nginx master (`nginx -g
# 'daemon off;'`), as in the official image, so `podman kill --signal HUP` reaches the master.
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-nginx:test}"
# shellcheck source=rootfs-lib.sh
source "$(dirname "$(readlink -f "$0")")/rootfs-lib.sh"

begin_build

stage_packages "$stage" nginx
new_rootfs "$root"
add_binaries "$root" "$stage" /usr/sbin/nginx
mkdir -p "$root"/etc/nginx "$root"/var/lib/nginx/{body,fastcgi,proxy,scgi,uwsgi} \
  "$root"/var/log/nginx "$root"/run/secrets
ln -sf /dev/stderr "$root/var/log/nginx/error.log"
ln -sf /dev/stdout "$root/var/log/nginx/access.log"
# Default config; tests usually mount their own directory over /etc/nginx (port chosen then).
cat >"$root/etc/nginx/nginx.conf" <<'CONF'
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  server {
    listen 127.0.0.1:8443 ssl;
    ssl_certificate /run/secrets/tls.crt;
    ssl_certificate_key /run/secrets/tls.key;
    location / { return 200 "ok\n"; }
  }
}
CONF

import_rootfs "$root" "$IMAGE_NAME" \
  'CMD ["nginx", "-g", "daemon off;"]' 'STOPSIGNAL SIGQUIT' 'ENV PATH=/usr/sbin:/usr/bin'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
