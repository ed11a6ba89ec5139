"""The lockout guard stopped the role before any change: no drop-in, sshd_config untouched, no packages, no firewall."""

from __future__ import annotations


def test_no_dropin_written(host):
    assert not host.file("/etc/ssh/sshd_config.d/100-homeport.conf").exists
    assert host.run("ls -A /etc/ssh/sshd_config.d").stdout == host.file("/root/hardening-before.dropins").content_string


def test_sshd_config_untouched(host):
    assert host.run("sha256sum -c /root/hardening-before.sha256").rc == 0
    backups = host.run("ls /etc/ssh/ | grep -F 'sshd_config.' | grep -F '~'").stdout.strip()
    assert not backups, "a backup of sshd_config means it was written"


def test_sshd_still_allows_passwords(host):
    assert "passwordauthentication yes" in host.run("sshd -T").stdout


def test_nothing_installed(host):
    for pkg in ("nftables", "fail2ban", "unattended-upgrades"):
        assert not host.package(pkg).is_installed, pkg
    assert not host.file("/usr/local/libexec/homeport").exists
    assert "homeport_filter" not in host.run("nft list tables 2>/dev/null || true").stdout
