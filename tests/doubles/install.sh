#!/bin/sh
# Install the macOS-sim lane's CLI doubles into a Debian container (run as root inside it).
# Usage: install.sh [SRC_DIR]   (default: the directory holding this script)
set -eu
src="${1:-$(cd "$(dirname "$0")" && pwd)}"
state=/var/lib/homeport-sim
mkdir -p "$state" /usr/local/bin
# doubles run as root and as the admin user; each creates its own state dir on first use
chmod 1777 "$state"
: >>"$state/calls.log"
for f in "$src"/bin/*; do
  [ -f "$f" ] || continue
  install -m 0755 "$f" "/usr/local/bin/$(basename "$f")"
done
# per-tool hooks (e.g. place /opt/homebrew/bin/brew, seed state files)
for h in "$src"/install.d/*.sh; do
  [ -f "$h" ] || continue
  HOMEPORT_SIM_SRC="$src" sh "$h"
done
# last, after every hook: doubles run as the admin user too, and all of them append to the same log
: >>"$state/calls.log"
chmod 0666 "$state/calls.log"
echo "homeport-sim doubles installed from $src"
