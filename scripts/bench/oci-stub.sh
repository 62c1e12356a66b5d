#!/bin/sh
# A stub `oci` CLI for the benchmark's original script: answers
# `oci secrets secret-bundle get --secret-id ID … --raw-output` with one curl call to the OCI
# stand-in's unsigned content endpoint (STANDIN_URL), which prints the bundle's base64 content
# as the real CLI's --query/--raw-output would. Nothing else of the CLI is imitated.
id=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--secret-id" ]; then id="$2"; shift; fi
  shift
done
exec curl -sf "$STANDIN_URL/_standin/content/$id"
