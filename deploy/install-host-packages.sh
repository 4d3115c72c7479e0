#!/usr/bin/env bash
# Install the Debian packages cellblock needs that are missing on this host.
# Reads deploy/host-packages.txt (the service), deploy/debian-packages.txt (the core
# languages) and any further lists given as arguments (`make test` adds the extra
# languages, so that every language's tests run); '#' starts a comment. Installs nothing when everything is present, so
# `make run` / `make test` stay fast and need no network on a prepared host.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(cat deploy/host-packages.txt deploy/debian-packages.txt "$@" \
    | sed -e 's/#.*//' | tr -s ' \t' '\n' | sed -e '/^$/d' | sort -u)

missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "host packages: all ${#wanted[@]} present"
    exit 0
fi

echo "host packages missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
