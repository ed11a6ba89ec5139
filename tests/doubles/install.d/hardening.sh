#!/bin/sh
# macOS-sim hook of the hardening role: the application firewall tool at its macOS path, a stock-like macOS
# sshd setup (/etc/ssh/sshd_config with the sshd_config.d Include first, 100-macos.conf) and the Remote Login
# launchd job (/System/Library/LaunchDaemons/ssh.plist, label com.openssh.sshd; not loaded = Remote Login Off).
set -eu
# macOS: root:wheel owns the system files
getent group wheel >/dev/null || groupadd -r wheel
mkdir -p /usr/libexec/ApplicationFirewall /System/Library/LaunchDaemons /etc/ssh/sshd_config.d
ln -sfn /usr/local/bin/socketfilterfw /usr/libexec/ApplicationFirewall/socketfilterfw
# macOS keeps sshd at /usr/sbin/sshd, as Debian does: the sim uses Debian's real sshd for `sshd -t` / `sshd -T`.
[ -f /etc/ssh/sshd_config.debian ] || cp /etc/ssh/sshd_config /etc/ssh/sshd_config.debian
cat >/etc/ssh/sshd_config <<'CONF'
#	$OpenBSD: sshd_config,v 1.104 2021/07/02 05:11:21 dtucker Exp $

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# This sshd was compiled with PATH=/usr/bin:/bin:/usr/sbin:/sbin

# The strategy used for options in the default sshd_config shipped with
# OpenSSH is to specify options with their default value where
# possible, but leave them commented.  Uncommented options override the
# default value.

# This Include directive is not part of the default sshd_config shipped with
# OpenSSH. Options set in the included configuration files generally override
# those that follow.  The defaults only apply to options that have not been
# explicitly set.  Options that appear multiple times keep the first value set,
# unless they are a multivalue option such as HostKey.
Include /etc/ssh/sshd_config.d/*

#Port 22
#ListenAddress 0.0.0.0
#PermitRootLogin prohibit-password
#PubkeyAuthentication yes
#AuthorizedKeysFile	.ssh/authorized_keys
#PasswordAuthentication yes
#KbdInteractiveAuthentication yes
#UsePAM no
#AllowTcpForwarding yes
#X11Forwarding no

# pass locale information
AcceptEnv LANG LC_*

# override default of no subsystems
Subsystem	sftp	/usr/libexec/sftp-server
CONF
cat >/etc/ssh/sshd_config.d/100-macos.conf <<'CONF'
# Options set by macOS that differ from the OpenSSH defaults.
UsePAM yes
CONF
cat >/System/Library/LaunchDaemons/ssh.plist <<'PLIST'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Disabled</key>
	<true/>
	<key>Label</key>
	<string>com.openssh.sshd</string>
	<key>Program</key>
	<string>/usr/libexec/sshd-keygen-wrapper</string>
	<key>ProgramArguments</key>
	<array>
		<string>/usr/sbin/sshd</string>
		<string>-i</string>
	</array>
	<key>Sockets</key>
	<dict>
		<key>Listeners</key>
		<dict>
			<key>SockServiceName</key>
			<string>ssh</string>
		</dict>
	</dict>
	<key>inetdCompatibility</key>
	<dict>
		<key>Wait</key>
		<false/>
	</dict>
	<key>StandardErrorPath</key>
	<string>/dev/null</string>
	<key>SHAuthorizationRight</key>
	<string>system.preferences</string>
	<key>POSIXSpawnType</key>
	<string>Interactive</string>
</dict>
</plist>
PLIST
echo "hardening sim: socketfilterfw, macOS sshd_config, ssh.plist in place"
