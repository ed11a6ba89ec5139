#!/bin/sh
# macOS-sim hook for Homebrew/Colima/Docker (run by tests/doubles/install.sh as root inside the container).
# - brew, colima and docker are NOT on PATH until installed: they move to /usr/local/libexec/homeport-sim/
#   (with _simlib.py); `brew install colima|docker` links them into the Homebrew prefix like the real formulae.
# - writes the Homebrew installer double /usr/local/libexec/homeport-sim/homebrew-install.sh (point the role's
#   homebrew_install_script_url at file:///usr/local/libexec/homeport-sim/homebrew-install.sh). Like the real
#   https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh it refuses root, needs `sudo -n` when
#   NONINTERACTIVE=1, installs the Command Line Tools when missing (softwareupdate trick), and picks the prefix
#   /opt/homebrew (Apple Silicon, sysctl hw.optional.arm64 = 1) or /usr/local (Intel).
# - brew and colima run as the unprivileged admin user: calls.log and their state dirs become writable for it.
set -eu
libexec=/usr/local/libexec/homeport-sim
state=/var/lib/homeport-sim
mkdir -p "$libexec"
# directories every Mac has and the runtime roles write into
mkdir -p /etc/paths.d /Library/LaunchDaemons /Library/Logs
install -m 0644 /usr/local/bin/_simlib.py "$libexec/_simlib.py"
for tool in brew colima docker; do
  if [ -f "/usr/local/bin/$tool" ]; then
    mv -f "/usr/local/bin/$tool" "$libexec/$tool"
    chmod 0755 "$libexec/$tool"
  fi
done
chmod 0666 "$state/calls.log"
for d in brew colima docker; do
  mkdir -p "$state/$d"
  chmod 1777 "$state/$d"
done

cat >"$libexec/homebrew-install.sh" <<'INSTALLER'
#!/bin/bash
# homeport-sim double of Homebrew's install.sh (see tests/doubles/install.d/homebrew.sh).
set -u
abort() { printf 'Error: %s\n' "$1" >&2; exit 1; }
printf '["homebrew-install.sh", "NONINTERACTIVE=%s", "USER=%s"]\n' "${NONINTERACTIVE:-}" "$(id -un)" \
  >>/var/lib/homeport-sim/calls.log
[ "$(id -u)" = 0 ] && abort "Don't run this as root!"
if [ -z "${NONINTERACTIVE:-}" ]; then
  [ -t 0 ] || abort "Running in interactive mode without a TTY: set NONINTERACTIVE=1."
fi
if [ "$(sysctl -n hw.optional.arm64 2>/dev/null)" = 1 ]; then prefix=/opt/homebrew; repo=/opt/homebrew
else prefix=/usr/local; repo=/usr/local/Homebrew; fi
if [ -x "$prefix/bin/brew" ]; then
  echo "Warning: Homebrew is already installed."; exit 0
fi
if ! sudo -n -v >/dev/null 2>&1; then
  abort "Need sudo access on macOS (e.g. the user $(id -un) needs to be an Administrator)!"
fi
echo "==> Checking for \`sudo\` access (which may request your password)..."
if ! xcode-select -p >/dev/null 2>&1; then
  echo "==> Searching online for the Command Line Tools"
  marker=/tmp/.com.apple.dt.CommandLineTools.installondemand.in-progress
  sudo -n touch "$marker"
  label="$(softwareupdate -l 2>/dev/null | grep -B1 -E 'Command Line Tools' | awk -F'*' '/^ *\*/ {print $2}' \
    | sed -e 's/^ *Label: //' -e 's/^ *//' | sort -V | tail -n1)"
  [ -n "$label" ] || abort "No Command Line Tools found by softwareupdate"
  echo "==> Installing $label"
  sudo -n softwareupdate -i "$label" >/dev/null
  sudo -n rm -f "$marker"
fi
echo "==> Downloading and installing Homebrew..."
sudo -n mkdir -p "$prefix/bin" "$prefix/Cellar" "$repo"
sudo -n chown -R "$(id -un):$(id -gn)" "$prefix/bin" "$prefix/Cellar" "$repo"
[ "$prefix" = /opt/homebrew ] && sudo -n chown "$(id -un):$(id -gn)" "$prefix"
cat >"$prefix/bin/brew" <<WRAPPER
#!/bin/sh
export HOMEBREW_PREFIX=$prefix
exec /usr/local/libexec/homeport-sim/brew "\$@"
WRAPPER
chmod 0755 "$prefix/bin/brew"
echo "==> Installation successful!"
echo "==> Next steps:"
echo "- Run these commands in your terminal to add Homebrew to your PATH:"
echo "    eval \"\$($prefix/bin/brew shellenv)\""
INSTALLER
chmod 0755 "$libexec/homebrew-install.sh"
echo "homeport-sim: Homebrew installer double at $libexec/homebrew-install.sh"
