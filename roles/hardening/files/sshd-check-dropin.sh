#!/bin/sh
# Installed by the homeport hardening role. Validates a candidate sshd drop-in in the context it will live in:
# copies the current drop-in directory to a temporary one, puts the candidate there under its final name, and
# runs `sshd -t` on a copy of the main config whose sshd_config.d Include points at the temporary directory
# (the candidate first). Nothing under /etc/ssh is touched; the exit status is sshd's.
# Usage: sshd-check-dropin CANDIDATE [NAME] [MAIN_CONFIG] [DROPIN_DIR]
set -u
cand="${1:?usage: sshd-check-dropin CANDIDATE [NAME] [MAIN_CONFIG] [DROPIN_DIR]}"
name="${2:-100-homeport.conf}"
main="${3:-/etc/ssh/sshd_config}"
dir="${4:-/etc/ssh/sshd_config.d}"
sshd="$(command -v sshd || echo /usr/sbin/sshd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sshd-check.XXXXXX")" || exit 2
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
mkdir "$tmp/d"
# the glob of the main config's Include (Debian: *.conf, macOS: *)
pat="$(grep -i -m1 -E '^[[:space:]]*Include[[:space:]]+(/etc/ssh/)?sshd_config\.d/' "$main" | awk '{print $2}' | sed 's#.*/##')"
[ -n "$pat" ] || pat='*'
for f in "$dir"/$pat; do
  [ -f "$f" ] && cp "$f" "$tmp/d/"
done
cp "$cand" "$tmp/d/$name"
{
  echo "Include $tmp/d/$pat"
  grep -v -i -E '^[[:space:]]*Include[[:space:]]+(/etc/ssh/)?sshd_config\.d/' "$main"
} >"$tmp/sshd_config"
"$sshd" -t -f "$tmp/sshd_config"
