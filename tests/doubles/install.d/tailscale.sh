#!/bin/sh
# Install hook of the tailscale/tailscaled doubles (tests/doubles/bin/tailscale, tailscaled).
#
#   tailscale.sh                   macOS-sim lane (run by tests/doubles/install.sh): take the doubles off PATH
#                                  (/usr/local/bin) and keep them in /usr/local/libexec/homeport-sim/, so that
#                                  tailscale and tailscaled exist only once `brew install tailscale` has linked
#                                  them into <brew prefix>/bin (the brew double's formula wraps these files).
#   tailscale.sh --debian-package  Debian lane of the tailscale scenario: lay the doubles out the way the real
#                                  `tailscale` .deb does (/usr/bin/tailscale, /usr/sbin/tailscaled, the
#                                  tailscaled.service unit and /etc/default/tailscaled), since the package cannot
#                                  be downloaded here. The role runs with tailscale_install_method=none
#                                  ("binary provided out of band") and enables/starts tailscaled itself.
set -eu
src="${HOMEPORT_SIM_SRC:-$(cd "$(dirname "$0")/.." && pwd)}"
state=/var/lib/homeport-sim
mkdir -p "$state/tailscale"
: >>"$state/calls.log"   # (its mode is install.sh's and the other hooks' business)

if [ "${1:-}" != "--debian-package" ]; then
  libexec=/usr/local/libexec/homeport-sim
  mkdir -p "$libexec"
  for exe in tailscale tailscaled; do
    install -m 0755 "$src/bin/$exe" "$libexec/$exe"
    rm -f "/usr/local/bin/$exe"
  done
  [ -f "$libexec/_simlib.py" ] || install -m 0644 "$src/bin/_simlib.py" "$libexec/_simlib.py"
  exit 0
fi

install -d -m 0755 /usr/local/bin /usr/sbin /lib/systemd/system
install -m 0644 "$src/bin/_simlib.py" /usr/local/bin/_simlib.py
install -m 0755 "$src/bin/tailscale" /usr/bin/tailscale
install -m 0755 "$src/bin/tailscaled" /usr/sbin/tailscaled
# the unit and defaults file shipped by pkgs.tailscale.com's tailscale package (1.76)
cat >/lib/systemd/system/tailscaled.service <<'UNIT'
[Unit]
Description=Tailscale node agent
Documentation=https://tailscale.com/kb/
Wants=network-pre.target
After=network-pre.target NetworkManager.service systemd-resolved.service

[Service]
EnvironmentFile=/etc/default/tailscaled
ExecStart=/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state --socket=/run/tailscale/tailscaled.sock --port=${PORT} $FLAGS
ExecStopPost=/usr/sbin/tailscaled --cleanup

Restart=on-failure

RuntimeDirectory=tailscale
RuntimeDirectoryMode=0755
StateDirectory=tailscale
StateDirectoryMode=0700
CacheDirectory=tailscale
CacheDirectoryMode=0750
Type=notify

[Install]
WantedBy=multi-user.target
UNIT
cat >/etc/default/tailscaled <<'DEFAULTS'
# Set the port to listen on for incoming VPN packets.
# Remote nodes will automatically be informed about the new port number,
# but you might want to configure this in order to set external firewall
# settings.
PORT="41641"

# Extra flags you might want to pass to tailscaled.
FLAGS=""
DEFAULTS
systemctl daemon-reload 2>/dev/null || true
echo "tailscale doubles installed as the Debian package layout"
