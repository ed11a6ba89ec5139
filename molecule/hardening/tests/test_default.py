"""Verifier of the hardening scenario: Debian 12/13 for real, the macOS-sim host against the doubles' state."""

from __future__ import annotations

import ipaddress
import json

import pytest
from homeport_testinfra import is_macsim, run_ok, sim_calls, sim_state, unit_active, unit_enabled

SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10"
ASKPASS_ENV = "SSH_ASKPASS=/usr/local/bin/homeport-test-askpass SSH_ASKPASS_REQUIRE=force"


def ssh(host, opts: str, target: str, command: str = "true"):
    """Run ssh inside the container. On the macOS sim, sshd is started per connection the way launchd does it on a
    Mac (`sshd -i`, which reads the config on disk afresh); on Debian the connection goes to the running ssh.service
    (which only knows the new policy if the role reloaded it)."""
    proxy = "-o ProxyCommand='/usr/sbin/sshd -i'" if is_macsim(host) else ""
    return host.run(f"{ASKPASS_ENV if 'password' in opts else ''} ssh {SSH_OPTS} {proxy} {opts} {target} {command}")


def sshd_effective(host) -> dict[str, list[str]]:
    out = run_ok(host, "sshd -T -C user=homeport,host=localhost,addr=127.0.0.1")
    result: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        result.setdefault(key, []).append(value)
    return result


def first_directive(host) -> str:
    for line in host.file("/etc/ssh/sshd_config").content_string.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return ""


@pytest.fixture(autouse=True)
def _hardened_hosts_only(host):
    if host.backend.get_hostname() == "hardening-plain":
        pytest.skip("hardening-plain is the un-hardened control of test_audit.py")


# ---- both OS families ------------------------------------------------------------------------------------------
def test_sshd_policy_in_effect(host):
    eff = sshd_effective(host)
    assert eff["passwordauthentication"] == ["no"]
    assert eff["kbdinteractiveauthentication"] == ["no"]
    assert eff["pubkeyauthentication"] == ["yes"]
    assert eff["permitrootlogin"] == ["no"]
    assert eff["authenticationmethods"] == ["publickey"]
    assert eff["allowusers"] == ["homeport"]
    assert eff["x11forwarding"] == ["no"]
    assert eff["maxauthtries"] == ["3"]
    assert eff["ciphers"][0].split(",")[0] == "chacha20-poly1305@openssh.com"
    assert "3des-cbc" not in eff["ciphers"][0]
    assert eff["kexalgorithms"] == ["sntrup761x25519-sha512@openssh.com"]
    assert all(m.endswith("-etm@openssh.com") for m in eff["macs"][0].split(","))


def test_sshd_forwarding_policy_in_effect(host):
    """Issue 27, finding 9: only local forwards (homeport tunnel), only to this host's loopback and tailnet addresses;
    no remote, socket, agent or tunnel-device forwarding (tests/unit/test_sshd_forwarding.py proves the refusals
    against a real sshd)."""
    eff = sshd_effective(host)
    assert eff["allowtcpforwarding"] == ["local"]
    opens = eff["permitopen"][0].split()
    assert opens[:3] == ["127.0.0.1:*", "localhost:*", "[::1]:*"], opens
    tailnet = [ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd7a:115c:a1e0::/48")]
    for entry in opens[3:]:  # the tailnet address(es), when known
        address = ipaddress.ip_address(entry.rsplit(":", 1)[0].strip("[]"))
        assert any(address in net for net in tailnet), opens
    assert eff["permitlisten"] == ["none"]
    for key in ("allowstreamlocalforwarding", "allowagentforwarding", "permittunnel", "gatewayports"):
        assert eff[key] == ["no"], (key, eff[key])


def test_dropin_and_include_first(host):
    dropin = host.file("/etc/ssh/sshd_config.d/100-homeport.conf")
    assert dropin.exists and dropin.user == "root" and dropin.mode == 0o644
    assert "AllowUsers homeport" in dropin.content_string
    want = "Include /etc/ssh/sshd_config.d/*" if is_macsim(host) else "Include /etc/ssh/sshd_config.d/*.conf"
    assert first_directive(host) == want
    text = host.file("/etc/ssh/sshd_config").content_string
    assert text.count("sshd_config.d/") == 1, "the Include must not be there twice"


def test_key_login_succeeds(host):
    r = ssh(host, "-o BatchMode=yes -i /root/id_homeport", "homeport@127.0.0.1", "id -un")
    assert r.rc == 0, r.stderr
    assert r.stdout.strip() == "homeport"


def test_password_login_is_refused(host):
    # The server offers publickey only: a client that may only use a password gets no method to try.
    opts = "-o BatchMode=yes -o PubkeyAuthentication=no -o PreferredAuthentications=password"
    r = ssh(host, opts, "homeport@127.0.0.1")
    assert r.rc == 255
    assert "Permission denied (publickey)" in r.stderr
    # And with the right password at hand (prepare proved this very command logged in before the role ran):
    r = ssh(
        host,
        "-o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive "
        "-o NumberOfPasswordPrompts=1",
        "homeport@127.0.0.1",
    )
    assert r.rc == 255
    assert "Permission denied" in r.stderr


def test_root_and_other_users_are_refused(host):
    r = ssh(host, "-o BatchMode=yes -i /root/id_homeport", "root@127.0.0.1")
    assert r.rc == 255 and "Permission denied" in r.stderr


def test_dropin_checker_refuses_a_bad_candidate(host):
    # The validator used before the drop-in is written: a broken candidate fails, the current one passes,
    # and /etc/ssh is not touched either way.
    before = host.file("/etc/ssh/sshd_config.d/100-homeport.conf").sha256sum
    host.run("printf 'PasswordAuthentication maybe\\n' > /tmp/bad-dropin.conf")
    bad = host.run("/usr/local/libexec/homeport/sshd-check-dropin /tmp/bad-dropin.conf")
    assert bad.rc != 0
    good = host.run("/usr/local/libexec/homeport/sshd-check-dropin /etc/ssh/sshd_config.d/100-homeport.conf")
    assert good.rc == 0, good.stderr
    assert host.file("/etc/ssh/sshd_config.d/100-homeport.conf").sha256sum == before


# ---- Debian ----------------------------------------------------------------------------------------------------
def test_sshd_reloaded_and_enabled(host):
    if is_macsim(host):
        pytest.skip("Debian only")
    assert unit_active(host, "ssh") and unit_enabled(host, "ssh")


def test_nftables_ruleset(host):
    if is_macsim(host):
        pytest.skip("Debian only")
    assert unit_enabled(host, "nftables")
    out = run_ok(host, "nft list table inet homeport_filter")
    assert "hook input priority filter; policy drop;" in out
    for expected in (
        'iif "lo" accept',
        "ct state established,related accept",
        'iifname "tailscale0" tcp dport 22 accept',
        "100.64.0.0/10",
        "fd7a:115c:a1e0::/48",
        "192.168.1.0/24",
        "ip saddr @tailnet4 tcp dport 22 accept",
        "ip6 saddr @tailnet6 tcp dport 22 accept",
        "ip saddr @lan4 tcp dport 8000 accept",
        "udp dport 41641 accept",
    ):
        assert expected in out, expected
    rules = [line.strip() for line in out.splitlines()]
    assert "tcp dport 8000 accept" not in rules, "port 8000 is not public: tailnet and LAN only"
    assert "tcp dport 22 accept" not in rules, "SSH is not public"
    assert "flush ruleset" not in host.file("/etc/nftables.conf").content_string
    # issue 27: loopback and tailnet destinations from the LAN are dropped before any NAT; containers only through
    # a published port (molecule/lan_attack attacks both with hand-made frames)
    pre = run_ok(host, "nft list chain inet homeport_filter prerouting")
    for expected in ("hook prerouting priority raw", "ip daddr 127.0.0.0/8 drop", "ip6 daddr ::1 drop",
                     'iifname "tailscale0" accept', "ip daddr @tailnet4 fib daddr type local drop"):  # fmt: skip
        assert expected in pre, expected
    fwd = run_ok(host, "nft list chain inet homeport_filter forward")
    assert "ct status dnat accept" in fwd and 'oifname "docker*" drop' in fwd, fwd


def test_nftables_reload_keeps_other_tables(host):
    if is_macsim(host):
        pytest.skip("Debian only")
    # A foreign table (as Docker or fail2ban create) must survive a reload of our ruleset.
    run_ok(host, "nft add table inet someone_else")
    try:
        run_ok(host, "systemctl reload nftables")
        assert "table inet someone_else" in run_ok(host, "nft list tables")
        assert "table inet homeport_filter" in run_ok(host, "nft list tables")
    finally:
        host.run("nft delete table inet someone_else")


def test_fail2ban_sshd_jail(host):
    if is_macsim(host):
        pytest.skip("Debian only")
    assert unit_active(host, "fail2ban") and unit_enabled(host, "fail2ban")
    out = run_ok(host, "fail2ban-client status sshd")
    assert "Status for the jail: sshd" in out
    assert run_ok(host, "fail2ban-client get sshd maxretry").strip() == "5"
    # the jail reads sshd's journal: a failed login from loopback is seen (and ignored: 127.0.0.1 is ignoreip/self)
    host.run(f"ssh {SSH_OPTS} -o BatchMode=yes nosuchuser@127.0.0.1 true")
    r = host.run(
        "for i in $(seq 1 20); do grep -q '\\[sshd\\] Ignore 127.0.0.1' /var/log/fail2ban.log && exit 0; "
        "sleep 1; done; exit 1"
    )
    assert r.rc == 0, "fail2ban did not see the failed login in the journal"


def test_unattended_upgrades(host):
    if is_macsim(host):
        pytest.skip("Debian only")
    assert host.package("unattended-upgrades").is_installed
    dump = run_ok(host, "apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert "label=Debian-Security" in dump
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    assert unit_enabled(host, "apt-daily-upgrade.timer")


# ---- macOS sim -------------------------------------------------------------------------------------------------
def macsim_only(host):
    if not is_macsim(host):
        pytest.skip("macOS-sim only")


def test_macos_firewall(host):
    macsim_only(host)
    out = run_ok(host, "/usr/libexec/ApplicationFirewall/socketfilterfw --getglobalstate --getstealthmode")
    assert "Firewall is enabled. (State = 1)" in out
    assert "Firewall stealth mode is on" in out
    st = json.loads(sim_state(host, "socketfilterfw", "state.json"))
    assert st["apps"] == {"/Applications/Tailscale.app": True}
    calls = sim_calls(host, "socketfilterfw")
    assert ["socketfilterfw", "--setglobalstate", "on"] in calls
    assert ["socketfilterfw", "--add", "/Applications/Tailscale.app"] in calls
    # allow-signed was already on (the default): never set
    assert not [c for c in calls if "--setallowsigned" in c]


def test_macos_power(host):
    macsim_only(host)
    st = json.loads(sim_state(host, "pmset", "state.json"))["AC Power"]
    assert (st["sleep"], st["disksleep"], st["autorestart"], st["womp"]) == ("0", "0", "1", "1")
    sets = [c for c in sim_calls(host, "pmset") if c[1:2] == ["-a"]]
    # only what differed was changed (womp was already 1), in one call
    assert sets == [["pmset", "-a", "autorestart", "1", "disksleep", "0", "sleep", "0"]]


def test_macos_software_update_and_guest(host):
    macsim_only(host)
    db = json.loads(sim_state(host, "defaults", "domains.json"))
    su = db["|/Library/Preferences/com.apple.SoftwareUpdate"]
    assert {k: v["value"] for k, v in su.items()} == {
        "AutomaticCheckEnabled": True,
        "AutomaticDownload": True,
        "CriticalUpdateInstall": True,
        "ConfigDataInstall": True,
        "AutomaticallyInstallMacOSUpdates": False,
    }
    assert all(v["type"] == "boolean" for v in su.values())
    assert db["|/Library/Preferences/com.apple.loginwindow"]["GuestEnabled"] == {"type": "boolean", "value": False}
    assert run_ok(host, "defaults read /Library/Preferences/com.apple.loginwindow GuestEnabled").strip() == "0"


def test_macos_remote_login_and_reload(host):
    macsim_only(host)
    assert run_ok(host, "systemsetup -getremotelogin").strip() == "Remote Login: On"
    # Remote Login was already on (prepare): read, never set again by the role
    assert [c for c in sim_calls(host, "systemsetup") if "-setremotelogin" in c] == [
        ["systemsetup", "-setremotelogin", "on"]
    ]
    # the drop-in changed, so the handler validated and kickstarted the loaded sshd job exactly once
    calls = sim_calls(host, "launchctl")
    assert calls.count(["launchctl", "kickstart", "-k", "system/com.openssh.sshd"]) == 1
    assert ["fdesetup", "status"] in sim_calls(host, "fdesetup")
