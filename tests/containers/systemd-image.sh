#!/usr/bin/env bash
# Builds localhost/secretsync-systemd:test: a minimal Debian 12 with systemd as PID 1 (from
# Debian's own packages, via debootstrap), for the tests that run `secretsync install` and the
# hardened units under a real systemd (tests/systemd/). Idempotent: does nothing if the image
# exists and was built by this script as it is now (FORCE=1 rebuilds).
#
# Run the image with: podman run -d --privileged --systemd=always --network host IMAGE
# (without --privileged systemd runs, but the tmpfs .mount unit cannot mount).
#
# Needs root, debootstrap (installed here if missing) and Debian's mirror (deb.debian.org).
# The downloaded .debs are kept in $SECRETSYNC_DEB_CACHE/{debootstrap,systemd-apt} for the next
# build.
set -euo pipefail
IMAGE_NAME="${IMAGE:-localhost/secretsync-systemd:test}"
MIRROR="${SECRETSYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# shellcheck source=rootfs-lib.sh
source "$(dirname "$(readlink -f "$0")")/rootfs-lib.sh"

begin_build

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get install -y -qq debootstrap >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi
mkdir -p "$DEB_CACHE/debootstrap"
# minbase + systemd: PID 1, journald, systemctl; dbus so systemctl talks to PID 1 the usual way.
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
  --cache-dir="$DEB_CACHE/debootstrap" bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

# podman + crun + conmon: the podman variant of the service runs against a podman inside the
# container (crun, because a nested runc cannot set up cgroup v1 here; see systemd.ts). With
# apt in a chroot: debootstrap --include fails to configure containers-common. No daemon starts.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$DEB_CACHE/systemd-apt/partial"
mount -t proc proc "$root/proc"
mount --bind "$DEB_CACHE/systemd-apt" "$root/var/cache/apt/archives"
# shellcheck disable=SC2064 # expand now: this build's paths
# Under `set -e` a failing command ends a trap too: umount fails for what is unmounted already
# (the normal path below), and must neither skip the clean-up nor become the script's status.
trap "umount '$root/proc' '$root/var/cache/apt/archives' 2>/dev/null || true; rm -rf '$work'" EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf 'deb %s bookworm main\n' "$MIRROR" >"$root/etc/apt/sources.list"
{ chroot "$root" apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
    podman crun conmon; } >"$work/apt.log" 2>&1 ||
  { tail -n 20 "$work/apt.log" >&2; exit 1; }
umount "$root/proc" "$root/var/cache/apt/archives"
rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"

# Units that fail or wait for hardware in a container, or slow the boot: masked.
for unit in systemd-networkd-wait-online.service getty@tty1.service console-getty.service \
  systemd-logind.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer dpkg-db-backup.timer \
  podman.service podman.socket podman-auto-update.service podman-auto-update.timer \
  podman-restart.service podman-clean-transient.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Journal in memory only: the container is thrown away after each test.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/10-volatile.conf"
printf 'secretsync-systemd\n' >"$root/etc/hostname"
# The nested podman: crun without cgroups (runc cannot mount cgroup v1 two levels down), the
# same ulimits as outside, events in a file.
mkdir -p "$root/etc/containers/containers.conf.d"
cat >"$root/etc/containers/containers.conf.d/50-secretsync-test.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "crun"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
  "$root"/usr/share/man "$root"/usr/share/locale

import_rootfs "$root" "$IMAGE_NAME" 'CMD ["/lib/systemd/systemd"]' 'STOPSIGNAL SIGRTMIN+3'
log "built in $((SECONDS - start)) s, rootfs $(du -sh "$root" | cut -f1)"
