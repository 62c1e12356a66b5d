# shellcheck shell=bash
# Shared builder for the test images (nginx, haproxy, postfix, dovecot): Debian packages are
# unpacked into a rootfs with only the shared libraries `ldd` lists, plus busybox and a
# passwd/group file, then `podman import`ed. Sourced by tests/containers/*-image.sh.
#
# Needs: root, apt-get/dpkg (Debian 12), podman, busybox-static. Nothing is fetched but
# Debian packages, by name, with apt-get download (cached in $SECRETSYNC_DEB_CACHE).

set -euo pipefail

DEB_CACHE="${SECRETSYNC_DEB_CACHE:-/var/cache/secretsync-test-debs}"
MULTIARCH="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"

log() { printf '[%s] %s\n' "${IMAGE_NAME:-image}" "$*" >&2; }

# Image label holding a hash of the build inputs (the calling script and this file): a changed
# script rebuilds its image instead of reusing a stale one left on the machine.
INPUTS_LABEL=secretsync.inputs
LIB_FILE="$(readlink -f "${BASH_SOURCE[0]}")"
inputs_hash() { cat "$(readlink -f "$0")" "$LIB_FILE" | sha256sum | cut -c1-64; }

# image_current IMAGE -> 0 if podman has IMAGE built from these very inputs (skip the build).
image_current() {
  local have
  have="$(podman image inspect --format "{{index .Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null)" ||
    return 1
  [[ "$have" == "$(inputs_hash)" ]]
}

# begin_build: what every *-image.sh does first. Exits 0 when $IMAGE_NAME is already built from
# these very inputs (unless FORCE=1); otherwise checks the tools and sets `start` (for the
# timing), `work` (a temp dir removed on exit), `root` (the rootfs) and `stage` (unpacked .debs).
begin_build() {
  if [[ "${FORCE:-}" != 1 ]] && image_current "$IMAGE_NAME"; then
    log "up to date, skipping"
    exit 0
  fi
  # shellcheck disable=SC2034 # read by the calling script's closing log line
  start=$SECONDS
  ensure_tools
  work="$(mktemp -d "/tmp/secretsync-image.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: $work is this build's directory
  trap "rm -rf '$work'" EXIT
  root="$work/root"
  stage="$work/stage"
}

# ensure_tools: podman, busybox (static) and dpkg-deb must be there.
ensure_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman runc)
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
}

# fetch_debs PKG... : make sure $DEB_CACHE has a .deb for each package (current candidate).
fetch_debs() {
  mkdir -p "$DEB_CACHE"
  chmod 755 "$DEB_CACHE"
  local want=() p
  for p in "$@"; do
    compgen -G "$DEB_CACHE/${p}_*.deb" >/dev/null || want+=("$p")
  done
  ((${#want[@]})) || return 0
  log "apt-get download ${want[*]}"
  (cd "$DEB_CACHE" && apt-get download -q "${want[@]}" >/dev/null 2>&1) ||
    { apt-get update -qq && (cd "$DEB_CACHE" && apt-get download -q "${want[@]}" >/dev/null); }
}

deb_file() { compgen -G "$DEB_CACHE/${1}_*.deb" | sort -V | tail -1; }

# deb_lib_depends PKG : the lib* packages PKG depends on (first alternative, no versions).
deb_lib_depends() {
  dpkg-deb -f "$(deb_file "$1")" Depends Pre-Depends 2>/dev/null |
    sed -e 's/^[A-Za-z-]*: //' | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/ //g' |
    grep -E '^lib' || true
}

host_has() { dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

# stage_packages STAGE PKG... : unpack PKG into STAGE, and, recursively, every lib* dependency
# the host does not have installed (so `ldd` can resolve everything from host + STAGE).
stage_packages() {
  local stage="$1"
  shift
  local -A seen=()
  local queue=("$@") p d
  while ((${#queue[@]})); do
    p="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -n "${seen[$p]:-}" ]] && continue
    seen[$p]=1
    fetch_debs "$p"
    dpkg -x "$(deb_file "$p")" "$stage"
    for d in $(deb_lib_depends "$p"); do
      [[ -n "${seen[$d]:-}" ]] && continue
      host_has "$d" || queue+=("$d")
    done
  done
}

# new_rootfs ROOT : merged-/usr skeleton with busybox (all applets linked) and basic files.
new_rootfs() {
  local root="$1"
  rm -rf "$root"
  mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib/"$MULTIARCH",usr/lib64,etc,tmp,run,var/run,var/log,var/lib,root,proc,sys,dev}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  chmod 1777 "$root/tmp"
  add_binaries "$root" /nonexistent /bin/busybox # static from busybox-static; libs if not
  # Every applet as a link in /usr/bin (one process; links point at /usr/bin/busybox, which
  # is where the rootfs has it too). Package files copied later replace links, never busybox.
  /bin/busybox --install -s "$root/usr/bin"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
EOF
  printf 'hosts: files\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
}

add_user() { # ROOT NAME UID GID
  echo "$2:x:$3:$4::/nonexistent:/usr/sbin/nologin" >>"$1/etc/passwd"
  grep -q "^$2:" "$1/etc/group" || echo "$2:x:$4:" >>"$1/etc/group"
}

# copy_file SRC DEST : copy resolving symlinks, creating parents.
copy_file() {
  mkdir -p "$(dirname "$2")"
  rm -f "$2" # never write through an existing link (a busybox applet, say)
  cp -L --preserve=mode "$1" "$2"
}

is_elf() {
  local magic=""
  [[ -f "$1" && ! -L "$1" ]] || return 1
  LC_ALL=C IFS= read -r -n4 magic <"$1" 2>/dev/null || true
  [[ "$magic" == $'\x7fELF' ]]
}

# add_tree ROOT STAGE PATH... : copy files or directories PATH (absolute, inside STAGE) into ROOT
# as they are (symlinks kept), then the shared libraries of every ELF file among them.
add_tree() {
  local root="$1" stage="$2"
  shift 2
  local p f elves=()
  for p in "$@"; do
    (cd "$stage" && cp -a --parents ".$p" "$root/")
    while IFS= read -r -d '' f; do
      is_elf "$f" && elves+=("${f#"$stage"}")
    done < <(find "$stage$p" -type f -print0)
  done
  ((${#elves[@]})) && add_libs "$root" "$stage" "${elves[@]/#/$stage}"
  return 0
}

# add_binaries ROOT STAGE PATH... : copy each PATH (absolute, inside STAGE or else the host) into
# ROOT, with every shared library ldd lists for them (resolved in STAGE first, then the host).
add_binaries() {
  local root="$1" stage="$2"
  shift 2
  local bin src srcs=()
  for bin in "$@"; do
    if [[ -e "$stage$bin" ]]; then src="$stage$bin"; else src="$bin"; fi
    copy_file "$src" "$root$bin"
    srcs+=("$src")
  done
  add_libs "$root" "$stage" "${srcs[@]}"
}

# add_libs ROOT STAGE FILE... : copy into ROOT the shared libraries ldd lists for FILEs (host
# paths), resolved in STAGE first, then the host; a library from STAGE keeps its path.
add_libs() {
  local root="$1" stage="$2"
  shift 2
  # every stage directory holding shared objects (packages' private dirs: RUNPATHs point there)
  local ldpath lib dest out
  ldpath="$( (find "$stage" -name '*.so*' -printf '%h\n' 2>/dev/null || true) | sort -u | paste -sd:)"
  # One ldd run for all of them (it prints "FILE:" before each file's list when given several).
  out="$(LD_LIBRARY_PATH="$ldpath" ldd "$@" 2>&1)" || true
  if grep -q 'not found' <<<"$out"; then
    log "unresolved libraries:"
    awk '/^[^ \t].*:$/ { file = $0 } /not found/ { print file, $0 }' <<<"$out" >&2
    return 1
  fi
  while read -r lib; do
    if [[ "$lib" == "$stage"/* ]]; then dest="${lib#"$stage"}"; else dest="$lib"; fi
    # /lib -> usr/lib inside the rootfs (merged /usr)
    dest="${dest/#\/lib\//\/usr\/lib\/}"
    dest="${dest/#\/lib64\//\/usr\/lib64\/}"
    [[ -e "$root$dest" ]] || copy_file "$lib" "$root$dest"
  done < <(sed -n -e 's/.*=> \(\/[^ ]*\) (0x.*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' <<<"$out" |
    sort -u)
}

# import_rootfs ROOT IMAGE CHANGE... : podman import the rootfs with --change lines.
import_rootfs() {
  local root="$1" image="$2"
  shift 2
  local args=(--change "LABEL $INPUTS_LABEL=$(inputs_hash)") c
  for c in "$@"; do args+=(--change "$c"); done
  tar -C "$root" --numeric-owner -cf - . | podman import -q "${args[@]}" - "$image" >/dev/null
}
