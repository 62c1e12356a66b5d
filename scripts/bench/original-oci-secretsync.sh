#!/usr/bin/env bash
# The original oci-secretsync script, copied from the project's starting README
# (ORIGINAL-README.md, "Install the sync script") for `deno task bench`. One change: TMPDIR
# can be pointed elsewhere (ORIGINAL_TMPDIR), so the benchmark never touches /run/secrets.
set -euo pipefail

MAP_FILE="${1:-/etc/oci-secretsync/map.csv}"
OCI="${OCI_CLI_BIN:-oci}"
TMPDIR="${ORIGINAL_TMPDIR:-/run/secrets/.tmp}"
mkdir -p "$TMPDIR"; chmod 0700 "$TMPDIR"

export OCI_CLI_AUTH=instance_principal

read_csv()  { grep -vE '^\s*$|^\s*#' "$1"; }
fetch_secret() {
  $OCI secrets secret-bundle get --secret-id "$1" --stage CURRENT \
    --query 'data."secret-bundle-content".content' --raw-output | base64 -d
}
atomic_write_if_changed() {
  local content="$1" path="$2" mode="$3" tmp="$TMPDIR/.$(basename "$2").$$"
  umask 077; printf '%s' "$content" > "$tmp"; chmod "$mode" "$tmp"
  if [ ! -f "$path" ] || ! cmp -s "$tmp" "$path"; then mv -f "$tmp" "$path"; return 0; fi
  rm -f "$tmp"; return 1
}
signal_container() {
  local name="$1" sig="$2"; [ -z "$name" -o -z "$sig" ] && return 0
  if command -v docker >/dev/null; then docker kill --signal "$sig" "$name" >/dev/null 2>&1 || true
  elif command -v podman >/dev/null; then podman kill --signal "$sig" "$name" >/dev/null 2>&1 || true
  fi
}

changed_any=0
while IFS=, read -r ocid path mode container signal; do
  val="$(fetch_secret "$ocid")" || { echo "ERR: fetch $ocid failed"; continue; }
  if atomic_write_if_changed "$val" "$path" "$mode"; then
    echo "Updated $path from $ocid"
    changed_any=1
    signal_container "$container" "$signal"
  fi
done < <(read_csv "$MAP_FILE")

[ "$changed_any" -eq 1 ] && exit 3 || exit 0
