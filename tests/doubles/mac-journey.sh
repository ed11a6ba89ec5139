#!/bin/sh
# macOS-sim, mac_journey lane: turn a homeport/dind:13 container (after tests/doubles/install.sh) into a Mac whose
# Colima VM is a real Docker engine. Run as root inside the container. What it sets up, and what it imitates:
# - no Docker engine on the "Mac" itself: docker.service, docker.socket and containerd.service are masked and there
#   is no /var/run/docker.sock (Colima's FAQ: the socket is ~/.colima/<profile>/docker.sock only);
# - the real docker CLI and compose v2 are not on PATH: `brew install docker docker-compose` (the brew double)
#   links them into the Homebrew prefix, like the formulae;
# - the colima double runs the VM with tests/doubles/bin/colima-vm (vm-engine flag), launchctl hands every job to
#   the launchd double (supervise = *), so a simulated boot (`launchd boot`) really starts the LaunchDaemons;
# - macOS tool paths: the doubles are also at /usr/sbin/sysctl, /usr/bin/sw_vers, /bin/launchctl, ... where macOS
#   has them, because SSH commands on a Mac get PATH=/usr/bin:/bin:/usr/sbin:/sbin (docker/cli#3045): sshd's
#   SetEnv at the END of sshd_config gives exactly that (the hardening role's drop-in, included first, wins once
#   installed: sshd keeps the first value);
# - /usr/local stays root's (as on Apple Silicon).
# Usage: mac-journey.sh COMPOSE_BINARY
set -eu
compose="${1:?usage: mac-journey.sh COMPOSE_BINARY}"
libexec=/usr/local/libexec/homeport-sim
state=/var/lib/homeport-sim

systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true
systemctl mask docker.socket docker.service containerd.service >/dev/null 2>&1
rm -f /var/run/docker.sock /run/docker.sock
if [ -x /usr/bin/docker ] && [ ! -L /usr/bin/docker ]; then
  mv /usr/bin/docker "$libexec/docker-cli"
fi
install -m 0755 "$compose" "$libexec/docker-compose-cli"

# a Mac resolves its own name (sudo warns on every call otherwise)
grep -q "[[:space:]]$(hostname)\$" /etc/hosts || printf '127.0.1.1\t%s\n' "$(hostname)" >>/etc/hosts
touch "$state/colima/vm-engine"
mkdir -p "$state/launchctl" "$state/launchd" /var/log/homeport-sim
chmod 1777 "$state/launchd"
echo '*' >"$state/launchctl/supervise"

for spec in sysctl:/usr/sbin sw_vers:/usr/bin launchctl:/bin pmset:/usr/bin defaults:/usr/bin \
  softwareupdate:/usr/sbin xcode-select:/usr/bin systemsetup:/usr/sbin fdesetup:/usr/bin dscl:/usr/bin; do
  tool="${spec%%:*}"
  dir="${spec#*:}"
  [ -e "/usr/local/bin/$tool" ] || continue
  if [ -e "$dir/$tool" ] && [ ! -L "$dir/$tool" ]; then
    mv "$dir/$tool" "$dir/$tool.debian"
  fi
  ln -sf "/usr/local/bin/$tool" "$dir/$tool"
done

if ! grep -q '^SetEnv PATH=/usr/bin:/bin:/usr/sbin:/sbin$' /etc/ssh/sshd_config; then
  printf '\n# homeport-sim: the PATH macOS sshd gives commands run over SSH\nSetEnv PATH=/usr/bin:/bin:/usr/sbin:/sbin\n' \
    >>/etc/ssh/sshd_config
fi
# sshd per connection, as launchd runs it on macOS (/System/Library/LaunchDaemons/ssh.plist: `sshd -i` with
# inetdCompatibility): every new SSH connection reads sshd_config and its drop-ins afresh
cat >/etc/systemd/system/macos-sshd.socket <<'UNIT'
[Unit]
Description=homeport-sim: sshd started per connection (launchd's com.openssh.sshd on macOS)
[Socket]
ListenStream=22
Accept=yes
[Install]
WantedBy=sockets.target
UNIT
cat >/etc/systemd/system/macos-sshd@.service <<'UNIT'
[Unit]
Description=homeport-sim: sshd -i for one connection
[Service]
ExecStart=-/usr/sbin/sshd -i
StandardInput=socket
StandardError=journal
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
UNIT
sshd -t
systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
systemctl daemon-reload
systemctl enable --now macos-sshd.socket >/dev/null 2>&1
echo "homeport-sim: mac_journey lane ready (VM engine, launchd supervision, macOS paths)"
