#!/usr/bin/env bash
# Install Debian packages the rehearsal needs, only when their command is missing.
#   scripts/system_deps.sh nginx:nginx chromium:chromium
# Each argument is COMMAND:PACKAGE; commands are looked up on PATH and in /usr/sbin.
set -euo pipefail
missing=()
for pair in "$@"; do
  cmd="${pair%%:*}" pkg="${pair#*:}"
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "system-deps: installing ${missing[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
