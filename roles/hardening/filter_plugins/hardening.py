"""Filters of the hardening role: parse the output of sshd -T, pmset, socketfilterfw and fdesetup, and compute the
sshd_config that keeps the drop-in Include as its first directive. Pure functions (unit-tested in
tests/unit/test_hardening_filters.py)."""

from __future__ import annotations

import ipaddress
import re

_INCLUDE_RE = re.compile(r"^\s*Include\s+(/etc/ssh/)?sshd_config\.d/", re.IGNORECASE)
_DIRECTIVE_RE = re.compile(r"^\s*(?!#)\S")


def sshd_effective(output: str) -> dict:
    """`sshd -T` output -> {keyword: [values...]} (keywords lower-case; repeated keywords keep every value)."""
    result: dict[str, list[str]] = {}
    for raw in (output or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        result.setdefault(key.lower(), []).append(value.strip())
    return result


def sshd_authorized_keys_files(output: str, user: str, home: str, uid: int | str = "") -> list[str]:
    """Absolute AuthorizedKeysFile paths in effect for a user, from `sshd -T -C user=...` output."""
    values = sshd_effective(output).get("authorizedkeysfile", [])
    paths: list[str] = []
    for value in values:
        for token in value.split():
            if token.lower() == "none":
                continue
            expanded = re.sub(
                r"%([%hUu])",
                lambda m: {"%": "%", "h": home, "u": user, "U": str(uid)}[m.group(1)],
                token,
            )
            if not expanded.startswith("/"):
                expanded = home.rstrip("/") + "/" + expanded
            if expanded not in paths:
                paths.append(expanded)
    return paths


def sshd_include_first(content: str, include_line: str) -> str:
    """The sshd_config content with the drop-in Include as its first directive.

    OpenSSH keeps the first value it reads for most keywords, so the drop-in only wins when the Include comes
    before every other directive (macOS updates rewrite /etc/ssh/sshd_config). When the first directive already
    is an Include of sshd_config.d, the content is returned unchanged; otherwise the Include line is put on top
    and any other Include of sshd_config.d is dropped (it would include the drop-ins twice)."""
    lines = (content or "").splitlines(keepends=True)
    for line in lines:
        if _DIRECTIVE_RE.match(line):
            if _INCLUDE_RE.match(line):
                return content
            break
    kept = [line for line in lines if not _INCLUDE_RE.match(line)]
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    return include_line.rstrip("\n") + "\n" + body


def pmset_settings(output: str) -> dict:
    """`pmset -g custom` (or `pmset -g`) output -> {section: {setting: value}}.

    Sections are "AC Power", "Battery Power", "UPS Power" (`-g custom`) or "Currently in use" (`-g`); a setting
    name may hold spaces ("Sleep On Power Button 1") and a value may be followed by a note in parentheses
    ("sleep 0 (sleep prevented by powerd)")."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for raw in (output or "").splitlines():
        if not raw.strip():
            continue
        if not raw[0].isspace() and raw.rstrip().endswith(":"):
            current = raw.strip().rstrip(":")
            sections.setdefault(current, {})
            continue
        if current is None:
            current = "Currently in use"
            sections.setdefault(current, {})
        text = re.sub(r"\s*\(.*\)\s*$", "", raw.strip())
        m = re.match(r"^(.*?)\s+(\S+)$", text)
        if m:
            sections[current][m.group(1).strip()] = m.group(2)
    return sections


def pmset_changes(output: str, wanted: dict) -> dict:
    """Settings of `wanted` whose value differs in any power-source section of `pmset -g custom` output."""
    sections = pmset_settings(output)
    changes = {}
    for key, value in (wanted or {}).items():
        want = str(int(value)) if isinstance(value, bool) else str(value)
        found = [sec.get(key) for sec in sections.values()] or [None]
        if any(v != want for v in found):
            changes[key] = want
    return changes


def socketfilterfw_state(output: str) -> dict:
    """Parse socketfilterfw --getglobalstate/--getstealthmode/--getallowsigned output (old and new wordings)."""
    text = output or ""
    state: dict[str, bool | None] = {
        "enabled": None,
        "stealth": None,
        "allow_signed": None,
        "allow_downloaded_signed": None,
    }
    m = re.search(r"Firewall is (enabled|disabled|blocking all non-essential)[^\n]*?(?:\(State = (\d)\))?", text)
    if m:
        state["enabled"] = m.group(2) in {"1", "2"} if m.group(2) else m.group(1) != "disabled"
    m = re.search(r"(?:Firewall stealth mode is (on|off))|(?:Stealth mode (enabled|disabled))", text)
    if m:
        state["stealth"] = (m.group(1) or m.group(2)) in {"on", "enabled"}
    m = re.search(r"Automatically allow (?:built-in )?signed (?:built-in )?software (ENABLED|DISABLED)", text)
    if m:
        state["allow_signed"] = m.group(1) == "ENABLED"
    m = re.search(r"Automatically allow downloaded signed software (ENABLED|DISABLED)", text)
    if m:
        state["allow_downloaded_signed"] = m.group(1) == "ENABLED"
    return state


def socketfilterfw_apps(output: str) -> dict:
    """`socketfilterfw --listapps` output -> {path: allowed (bool)}."""
    apps: dict[str, bool] = {}
    current = None
    for raw in (output or "").splitlines():
        line = raw.strip()
        m = re.match(r"^\d+\s*:\s+(.+?)\s*$", line)
        if m:
            current = m.group(1)
            apps[current] = False
            continue
        if current and line.startswith("("):
            apps[current] = "Allow incoming connections" in line
            current = None
    return apps


def filevault_on(output: str) -> bool:
    """`fdesetup status` -> True for "FileVault is On." (also while encryption is in progress)."""
    return bool(re.search(r"FileVault is On", output or ""))


def ip_in_networks(address: str, networks: list) -> bool:
    """True when an IP address lies in one of the networks (CIDR strings)."""
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        return False
    for net in networks or []:
        try:
            if ip in ipaddress.ip_network(str(net), strict=False):
                return True
        except ValueError:
            continue
    return False


def invalid_networks(networks: list) -> list:
    """The entries of a list that are not valid IPv4/IPv6 networks in CIDR notation (host bits must be zero)."""
    bad = []
    for net in networks or []:
        try:
            ipaddress.ip_network(str(net), strict=True)
        except ValueError:
            bad.append(net)
    return bad


def split_networks(networks: list) -> dict:
    """{"ipv4": [...], "ipv6": [...]} of CIDR strings (normalised)."""
    out: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for net in networks or []:
        n = ipaddress.ip_network(str(net), strict=False)
        out["ipv4" if n.version == 4 else "ipv6"].append(str(n))
    return out


class FilterModule:
    def filters(self):
        return {
            "hardening_sshd_effective": sshd_effective,
            "hardening_sshd_authorized_keys_files": sshd_authorized_keys_files,
            "hardening_sshd_include_first": sshd_include_first,
            "hardening_pmset_settings": pmset_settings,
            "hardening_pmset_changes": pmset_changes,
            "hardening_socketfilterfw_state": socketfilterfw_state,
            "hardening_socketfilterfw_apps": socketfilterfw_apps,
            "hardening_filevault_on": filevault_on,
            "hardening_ip_in_networks": ip_in_networks,
            "hardening_invalid_networks": invalid_networks,
            "hardening_split_networks": split_networks,
        }
