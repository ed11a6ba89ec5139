"""Tailscale filters for the tailscale role (pure functions, unit-tested in tests/unit/test_tailscale_filter.py).

- ``tailscale_join_action(status, desired_hash, stored_hash)``: decide whether ``tailscale up`` must run.
- ``tailscale_status_facts(status)``: the node's tailnet addresses and name from ``tailscale status --json``.
- ``tailscale_validate(config)``: every problem with the role's input, as messages naming the variable.
- ``tailscale_auth_value(authkey, oauth_secret, ephemeral, preauthorized)``: the value ``--auth-key`` reads.
- ``tailscale_up_error(stderr, secrets)``: tailscale's error in plain words, with every secret redacted.

``status`` is what ``tailscale status --json`` prints (a JSON string or the parsed dict). Its documented shape
(ipnstate.Status): ``BackendState`` is one of NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running;
``Self`` is the node's own PeerStatus (``Online``, ``TailscaleIPs``, ``DNSName``, ``HostName``, ...);
``CurrentTailnet`` names the tailnet and its MagicDNS suffix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - the filters are also importable without ansible (tests, tooling)

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


JOIN = "join"
REAUTH = "reauth"
SKIP = "skip"

# States in which the node has no usable login: `tailscale up` needs an auth key.
_LOGGED_OUT = {"NoState", "NeedsLogin", "NeedsMachineAuth"}
_KNOWN_STATES = _LOGGED_OUT | {"Stopped", "Starting", "Running"}

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TAG_RE = re.compile(r"^tag:[A-Za-z][A-Za-z0-9-]*$")
_EXIT_NODE_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# Flags of `tailscale up` the role sets itself from its variables: extra args must not repeat them, or the
# argument hash would no longer describe what the node runs with, and a key must never travel in extra args.
_MANAGED_FLAGS = {
    "--auth-key",
    "--authkey",
    "--hostname",
    "--ssh",
    "--advertise-tags",
    "--advertise-routes",
    "--advertise-exit-node",
    "--exit-node",
    "--exit-node-allow-lan-access",
    "--accept-routes",
    "--accept-dns",
    "--login-server",
    "--reset",
    "--timeout",
    "--force-reauth",
}


def parse_status(status) -> dict:
    """`tailscale status --json` output (str/bytes/dict/None) -> dict ({} when there is none)."""
    if status is None:
        return {}
    if isinstance(status, dict):
        return status
    if isinstance(status, bytes):
        status = status.decode("utf-8", "replace")
    if not isinstance(status, str):
        raise AnsibleFilterError(f"tailscale status: expected JSON text or a dict, got {type(status).__name__}")
    if not status.strip():
        return {}
    try:
        data = json.loads(status)
    except ValueError as exc:
        raise AnsibleFilterError(f"tailscale status --json did not print JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise AnsibleFilterError("tailscale status --json did not print a JSON object")
    return data


def tailscale_join_action(status, desired_hash: str, stored_hash: str | None = None) -> dict:
    """Decide what `tailscale up` has to do on this node.

    Returns ``{"action": "join"|"reauth"|"skip", "reason": str, "needs_key": bool, "backend_state": str,
    "online": bool}``:

    - ``join``: the node is not logged in (NoState, NeedsLogin, NeedsMachineAuth, or no status at all):
      `tailscale up` with an auth key; ``needs_key`` is true.
    - ``reauth``: the node is logged in but must be brought up again without a new login: it is Stopped,
      Starting, Running but not online, or the desired arguments differ from the ones last applied
      (``stored_hash``, sha256 of the arguments without the key).
    - ``skip``: Running, online, same arguments: nothing to do.
    """
    if not desired_hash:
        raise AnsibleFilterError("tailscale_join_action: desired_hash must not be empty")
    data = parse_status(status)
    stored = (stored_hash or "").strip()
    state = data.get("BackendState") or "NoState"
    self_node = data.get("Self") or {}
    online = bool(self_node.get("Online"))

    def result(action: str, reason: str) -> dict:
        return {
            "action": action,
            "reason": reason,
            "needs_key": action == JOIN,
            "backend_state": state,
            "online": online,
        }

    if not data:
        return result(JOIN, "tailscaled reported no status: the node has never joined")
    if state not in _KNOWN_STATES:
        raise AnsibleFilterError(f"tailscale status: unknown BackendState {state!r}")
    if state == "NeedsMachineAuth":
        return result(JOIN, "the node waits for approval in the admin console (NeedsMachineAuth)")
    if state in _LOGGED_OUT:
        if stored:
            return result(JOIN, f"the node was logged out or its node key expired ({state})")
        return result(JOIN, f"the node is not logged in ({state})")
    if state == "Stopped":
        return result(REAUTH, "tailscale is stopped (tailscale down)")
    if stored != desired_hash:
        why = "no arguments recorded yet" if not stored else "the desired arguments changed"
        return result(REAUTH, f"{why} ({state})")
    if state == "Starting":
        return result(REAUTH, "the node is still starting and not online")
    if not online:
        return result(REAUTH, "the node is Running but not online")
    return result(SKIP, "Running, online, arguments unchanged")


def tailscale_status_facts(status) -> dict:
    """Addresses and names of this node from `tailscale status --json` (empty strings when not joined)."""
    data = parse_status(status)
    self_node = data.get("Self") or {}
    ips = self_node.get("TailscaleIPs") or data.get("TailscaleIPs") or []
    v4 = [ip for ip in ips if _ip_version(ip) == 4]
    v6 = [ip for ip in ips if _ip_version(ip) == 6]
    tailnet = data.get("CurrentTailnet") or {}
    return {
        "backend_state": data.get("BackendState") or "NoState",
        "online": bool(self_node.get("Online")),
        "ipv4": v4[0] if v4 else "",
        "ipv6": v6[0] if v6 else "",
        "dns_name": (self_node.get("DNSName") or "").rstrip("."),
        "hostname": self_node.get("HostName") or "",
        "tailnet": tailnet.get("Name") or "",
        "magicdns_suffix": tailnet.get("MagicDNSSuffix") or data.get("MagicDNSSuffix") or "",
        "version": data.get("Version") or "",
    }


def _ip_version(value) -> int | None:
    try:
        return ipaddress.ip_address(str(value)).version
    except ValueError:
        return None


def tailscale_validate(config: dict) -> list[str]:
    """Every problem with the role's variables, one message each, naming the variable; never a secret value.

    ``config`` keys (the role passes them from its variables): authkey, oauth_client_secret (the secrets
    themselves: only checked, never echoed), hostname, advertise_tags, advertise_routes, advertise_exit_node,
    exit_node, exit_node_allow_lan_access, extra_args, login_server.
    """
    errors: list[str] = []
    authkey = config.get("authkey") or ""
    oauth = config.get("oauth_client_secret") or ""
    tags = config.get("advertise_tags") or []
    routes = config.get("advertise_routes") or []
    extra = config.get("extra_args") or []

    if authkey and oauth:
        errors.append(
            "tailscale_authkey and tailscale_oauth_client_secret are both set: set only one "
            "(an auth key, or an OAuth client secret that mints one)"
        )
    if authkey and (authkey != authkey.strip() or any(c.isspace() for c in authkey)):
        errors.append("tailscale_authkey contains whitespace: paste the key exactly as Tailscale shows it")
    if authkey.startswith("tskey-client-"):
        errors.append(
            "tailscale_authkey holds an OAuth client secret (tskey-client-...): put it in "
            "tailscale_oauth_client_secret instead (it also needs tailscale_advertise_tags)"
        )
    if oauth:
        if not oauth.startswith("tskey-client-"):
            errors.append("tailscale_oauth_client_secret is not an OAuth client secret (expected tskey-client-...)")
        if any(c.isspace() for c in oauth):
            errors.append("tailscale_oauth_client_secret contains whitespace")
        if not tags:
            errors.append(
                "tailscale_oauth_client_secret requires tailscale_advertise_tags: nodes joined with an OAuth "
                "client are owned by tags (e.g. ['tag:homeport'])"
            )

    if not isinstance(tags, list):
        errors.append("tailscale_advertise_tags must be a list such as ['tag:server']")
        tags = []
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            errors.append(
                f"tailscale_advertise_tags: {tag!r} is not a tag (tags start with 'tag:' followed by a letter, "
                "then letters, digits or '-', e.g. 'tag:server')"
            )

    if not isinstance(routes, list):
        errors.append("tailscale_advertise_routes must be a list of CIDR prefixes such as ['192.168.1.0/24']")
        routes = []
    for route in routes:
        if not isinstance(route, str) or "/" not in route:
            errors.append(f"tailscale_advertise_routes: {route!r} is not a CIDR prefix (e.g. 192.168.1.0/24)")
            continue
        try:
            ipaddress.ip_network(route, strict=True)
        except ValueError as exc:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f"; did you mean {ipaddress.ip_network(route, strict=False)}?"
            errors.append(f"tailscale_advertise_routes: {route!r} is not a valid CIDR prefix ({exc}){hint}")

    hostname = config.get("hostname") or ""
    if hostname and not _HOSTNAME_RE.match(str(hostname)):
        errors.append(
            f"tailscale_hostname: {hostname!r} is not a valid host name (1-63 letters, digits and '-', "
            "not starting or ending with '-'; no dots)"
        )

    exit_node = str(config.get("exit_node") or "")
    if config.get("advertise_exit_node") and exit_node:
        errors.append(
            "tailscale_advertise_exit_node and tailscale_exit_node are both set: a node cannot offer itself "
            "as an exit node and use another one at the same time"
        )
    if config.get("exit_node_allow_lan_access") and not exit_node:
        errors.append("tailscale_exit_node_allow_lan_access is true but tailscale_exit_node is empty")
    if exit_node and _ip_version(exit_node) is None and not _EXIT_NODE_NAME_RE.match(exit_node):
        errors.append(f"tailscale_exit_node: {exit_node!r} is neither a Tailscale IP nor a node name")

    login_server = str(config.get("login_server") or "")
    if login_server and not re.match(r"^https?://[^\s/]+", login_server):
        errors.append(f"tailscale_login_server: {login_server!r} is not an http(s) URL")

    if not isinstance(extra, list):
        errors.append("tailscale_extra_args must be a list of flags such as ['--shields-up']")
        extra = []
    for arg in extra:
        if not isinstance(arg, str) or not arg.startswith("--"):
            errors.append(f"tailscale_extra_args: {arg!r} is not a long flag (use '--name' or '--name=value')")
            continue
        flag = arg.split("=", 1)[0]
        if flag in {"--auth-key", "--authkey"}:
            errors.append(
                "tailscale_extra_args must not carry the auth key: use tailscale_authkey "
                "(or tailscale_oauth_client_secret), which are never logged"
            )
        elif flag in _MANAGED_FLAGS:
            errors.append(f"tailscale_extra_args: {flag} is set by the role itself; use its tailscale_* variable")
    return errors


def tailscale_auth_value(
    authkey: str | None, oauth_secret: str | None = None, ephemeral: bool = False, preauthorized: bool = True
) -> str:
    """The value `tailscale up --auth-key` takes: the auth key, or the OAuth client secret with the attributes
    of the key it mints (`?ephemeral=...&preauthorized=...`, Tailscale defaults being ephemeral=true and
    preauthorized=false, which a server does not want). An OAuth secret that already carries a query is kept."""
    if authkey:
        return str(authkey)
    if not oauth_secret:
        return ""
    secret = str(oauth_secret)
    if "?" in secret:
        return secret
    return f"{secret}?ephemeral={str(bool(ephemeral)).lower()}&preauthorized={str(bool(preauthorized)).lower()}"


# (pattern in tailscale's output, plain-words explanation); first match wins.
_UP_ERRORS = [
    (
        re.compile(r"expired", re.I),
        "the auth key has expired: create a new one in the Tailscale admin console (Settings > Keys) and set "
        "tailscale_authkey (or use an OAuth client secret in tailscale_oauth_client_secret, which does not expire)",
    ),
    (
        re.compile(r"invalid key|API key does not exist|key not found|not a valid|unauthorized|revoked", re.I),
        "the auth key was refused by Tailscale (invalid, revoked, or already used if it is a one-off key): "
        "create a new key in the admin console (Settings > Keys) and set tailscale_authkey",
    ),
    (
        re.compile(r"requested tags .* (invalid|not permitted)|tags? .*not permitted", re.I),
        "Tailscale refused the advertised tags: each tag in tailscale_advertise_tags must exist in the tailnet "
        "policy (tagOwners) and be owned by the key or OAuth client used",
    ),
    (
        re.compile(r"failed to connect to local tailscaled|doesn't appear to be running|connection refused", re.I),
        "tailscaled is not running on the host, so tailscale up could not reach it",
    ),
    (
        re.compile(r"timeout|timed out|context deadline exceeded", re.I),
        "tailscale up timed out before the node came online: check that the host reaches the control server "
        "(login.tailscale.com or tailscale_login_server) over HTTPS",
    ),
    (
        re.compile(r"requires mentioning all non-default flags|changing settings via 'tailscale up'", re.I),
        "tailscale refused to change settings without mentioning every non-default flag",
    ),
]


def redact(text: str, secrets) -> str:
    """Replace every secret (and any auth-key-looking token) in text."""
    out = str(text or "")
    for item in secrets or []:
        if not item:
            continue
        secret = str(item)
        for variant in {secret, secret.split("?", 1)[0]}:
            if len(variant) >= 4:
                out = out.replace(variant, "<redacted>")
    return re.sub(r"tskey-[A-Za-z0-9_-]+(\?[^\s'\"]*)?", "tskey-<redacted>", out)


def tailscale_up_error(stderr, secrets=None, rc=None) -> str:
    """A plain-words message for a failed `tailscale up` that never contains a secret."""
    text = redact(stderr if isinstance(stderr, str) else str(stderr or ""), secrets)
    detail = " ".join(text.split())[:400]
    for pattern, message in _UP_ERRORS:
        if pattern.search(text):
            return f"tailscale up failed: {message}. Tailscale said: {detail}"
    code = f" (exit {rc})" if rc is not None else ""
    return f"tailscale up failed{code}: {detail or 'no error output'}"


class FilterModule:
    def filters(self):
        return {
            "tailscale_join_action": tailscale_join_action,
            "tailscale_status_facts": tailscale_status_facts,
            "tailscale_validate": tailscale_validate,
            "tailscale_auth_value": tailscale_auth_value,
            "tailscale_up_error": tailscale_up_error,
        }
