#!/usr/bin/python
"""homeport.homeport.homeport_facts: what the shared host facts need from one host, read in one remote call."""

from __future__ import annotations

import ipaddress
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.homeport.homeport.plugins.module_utils.host_tools import Host, search_path

DOCUMENTATION = r"""
---
module: homeport_facts
short_description: Read what the shared host facts need from a homeport host (read-only, one call)
description:
  - Reads in one module call what roles/homeport/tasks/facts.yml turns into the shared host facts - the admin
    user's home directory, whether the Mac is Apple Silicon (and so Homebrew's prefix) and, when asked, the node's
    tailnet IPv4 and IPv6 addresses as tailscaled reports them now.
  - The home comes from the user database (C(pwd)); it is empty when the user does not exist.
  - Apple Silicon is C(sysctl -n hw.optional.arm64) = 1, read only when I(os_family) is C(Darwin) (the key does not
    exist on an Intel Mac, where sysctl exits 1). sysctl is C(/usr/sbin/sysctl) on macOS, found on C(PATH) first.
    Homebrew's prefix follows from it - C(/opt/homebrew) on Apple Silicon, C(/usr/local) on Intel, empty elsewhere.
  - >-
    The tailnet addresses are the first IPv4 and the first IPv6 line of C(tailscale ip), which without C(-4) or
    C(-6) prints every address of the node, one per line (https://tailscale.com/kb/1080/cli#ip; runIP in
    tailscale's cmd/tailscale/cli/ip.go). Each is empty when the CLI is missing, fails (it exits 1 with
    "no current Tailscale IPs; state: ..." when the node is not up) or prints no address of that kind. The fact
    cache's C(tailscale_ipv4) and C(tailscale_ipv6) are never read.
  - It only reads and never fails because a tool is missing or broken.
version_added: "0.1.0"
author: homeport developers
options:
  admin_user:
    description: The login that administers the host (C(homeport_admin_user)).
    type: str
    required: true
  os_family:
    description: The host's OS family as homeport sees it (C(homeport_os_family); the macOS-sim lane says C(Darwin)).
    type: str
    required: true
    choices: [Darwin, Debian]
  tailnet:
    description: Read the live tailnet addresses (C(tailscale ip)); true when tailscale is in C(homeport_roles).
    type: bool
    default: false
  tailscale_cli:
    description:
      - The tailscale CLI. Empty means C(<Homebrew prefix>/bin/tailscale) on C(Darwin) and C(tailscale) found on
        C(PATH) (then C(/usr/bin), where the Debian package puts it) elsewhere.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: It only reads, so a check-mode run reads the same facts.
  diff_mode:
    support: none
notes:
  - Python 3.9 compatible and stdlib only on the host (macOS' system Python).
"""

EXAMPLES = r"""
- name: Read the shared host facts' inputs
  homeport.homeport.homeport_facts:
    admin_user: admin
    os_family: Darwin
    tailnet: true
  register: _facts
"""

RETURN = r"""
admin_home:
  description: The admin user's home directory; empty when the user does not exist.
  returned: always
  type: str
  sample: /Users/admin
apple_silicon:
  description: True on an Apple Silicon Mac (C(sysctl -n hw.optional.arm64) = 1); false elsewhere.
  returned: always
  type: bool
brew_prefix:
  description: Homebrew's prefix on C(Darwin) (C(/opt/homebrew) on Apple Silicon, C(/usr/local) on Intel), else empty.
  returned: always
  type: str
  sample: /opt/homebrew
tailnet_ipv4:
  description:
    - The node's tailnet IPv4 address as C(tailscale ip) prints it now; empty when not asked, when the CLI is
      missing or fails, or when the node is not up.
  returned: always
  type: str
  sample: 100.101.102.103
tailnet_ipv6:
  description:
    - The node's tailnet IPv6 address as C(tailscale ip) prints it now; empty when not asked, when the CLI is
      missing or fails, when the node is not up or has no IPv6 address.
  returned: always
  type: str
  sample: fd7a:115c:a1e0::1
"""

TIMEOUT_S = 15


def run(argv, path):
    """stdout of argv (argv[0] looked up on path unless it names a file), or None when missing or failing."""
    return Host(path).run(*argv, timeout=TIMEOUT_S)


def admin_home(user):
    try:
        return pwd.getpwnam(user).pw_dir if user else ""
    except KeyError:
        return ""


def apple_silicon(path):
    out = run(["sysctl", "-n", "hw.optional.arm64"], path)
    return out is not None and out.strip() == "1"


def first_address(text, kind):
    """The first line of text that is an address of kind (ipaddress.IPv4Address or IPv6Address), else ""."""
    for line in (text or "").splitlines():
        try:
            return str(kind(line.strip()))
        except ValueError:
            continue
    return ""


def read_facts(admin_user, os_family, tailnet=False, tailscale_cli="", environ=None):
    path = search_path(os.environ if environ is None else environ)
    darwin = os_family == "Darwin"
    arm = darwin and apple_silicon(path)
    prefix = ("/opt/homebrew" if arm else "/usr/local") if darwin else ""
    ips = None
    if tailnet:
        cli = tailscale_cli or (prefix + "/bin/tailscale" if darwin else "tailscale")
        ips = run([cli, "ip"], path)
    return {
        "admin_home": admin_home(admin_user),
        "apple_silicon": arm,
        "brew_prefix": prefix,
        "tailnet_ipv4": first_address(ips, ipaddress.IPv4Address),
        "tailnet_ipv6": first_address(ips, ipaddress.IPv6Address),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "admin_user": {"type": "str", "required": True},
            "os_family": {"type": "str", "required": True, "choices": ["Darwin", "Debian"]},
            "tailnet": {"type": "bool", "default": False},
            "tailscale_cli": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    module.exit_json(changed=False, **read_facts(p["admin_user"], p["os_family"], p["tailnet"], p["tailscale_cli"]))


if __name__ == "__main__":
    main()
