#!/bin/sh
# secret-reader FILE: a stand-in for a server that re-reads a secret on a signal.
#
# Prints "READY <sha256 of FILE>" once its traps are set, then one line per signal:
# "HUP <sha256>" or "USR1 <sha256>". "missing" replaces the hash when FILE cannot be read.
# It prints hashes, never the content, so test logs never hold a secret value.
#
# Runs as PID 1 of its container. The kernel drops signals that PID 1 has no handler for,
# and busybox sh runs a trap only between commands: a plain `sleep 1000` in the foreground
# would delay the trap until the sleep ends. `wait` is interruptible, so sleep in the
# background and wait for it; a signal ends the wait, the trap runs, the loop starts over.

file=${1:-/run/secrets/secret}
sleeper=

digest() {
  if [ -r "$file" ]; then
    set -- $(sha256sum <"$file")
    echo "$1"
  else
    echo missing
  fi
}

stop() {
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
  exit 0
}

trap 'echo "HUP $(digest)"' HUP
trap 'echo "USR1 $(digest)"' USR1
# `podman stop`/`rm` send TERM first: end at once instead of waiting for the KILL.
trap stop TERM INT

echo "READY $(digest)"
while :; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper"
  # Interrupted by a signal: the sleep still runs; end it so they do not pile up.
  kill "$sleeper" 2>/dev/null
done
