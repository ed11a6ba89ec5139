"""The round trip that `ansible.builtin.copy` and `ansible.builtin.template` make for nothing.

When the file on the host already has the right content, the builtin copy action still calls the `file` module
(a second remote call after `stat`) to apply owner, group and mode. The `stat` it has just made already reports
all three, so when they match there is nothing for that call to do. Over a 150 ms link that call is a sixth of a
second per file on every rerun and every drift check.

`skip_unchanged_file_call(action)` wraps one action instance: it remembers what `stat` reported for each path,
and answers the `file` call itself only when nothing is left for it to do: the path is a regular file (not a
link, not a directory), and only owner, group and mode are asked for, each already as asked. Anything else
(symbolic modes, SELinux contexts, file attributes, `follow`, a missing file) goes to the real `file` module,
so the behaviour is the builtin's in every case, with one call fewer in the common one.
"""

from __future__ import annotations

import re

# keys of the file call that need nothing done when the path is a regular file with the right content
_NEUTRAL = {"dest", "path", "_original_basename", "recurse", "state", "force", "src", "unsafe_writes", "follow"}
_HANDLED = {"owner", "group", "mode"}
_OCTAL = re.compile(r"^0?[0-7]{3,4}$")


def wanted_mode(mode) -> int | None:
    """The permission bits a file call's `mode` asks for, or None when it is not a plain octal mode."""
    if isinstance(mode, bool):
        return None
    if isinstance(mode, int):
        return mode  # as the file module applies an integer: as-is
    if isinstance(mode, str) and _OCTAL.match(mode.strip()):
        return int(mode.strip(), 8)
    return None  # symbolic (u=rw,g=r), 'preserve' or anything else: the file module decides


def _same_principal(wanted, name, number) -> bool:
    if wanted is None:
        return True
    wanted = str(wanted).strip()
    return wanted in (str(name), str(number))


def unchanged_result(args: dict, stat: dict | None) -> dict | None:
    """What the `file` module would return for ``args`` on the file ``stat`` describes, when it would change
    nothing; None when the module has to run (something to change, or something this cannot judge)."""
    if not stat or not stat.get("exists") or not stat.get("isreg") or stat.get("islnk"):
        return None
    if args.get("state") != "file" or args.get("recurse") or args.get("follow"):
        return None
    for key, value in args.items():
        if key not in _NEUTRAL and key not in _HANDLED and value is not None:
            return None  # seuser/serole/selevel/setype/attributes or an unknown key: the module decides
    if not _same_principal(args.get("owner"), stat.get("pw_name"), stat.get("uid")):
        return None
    if not _same_principal(args.get("group"), stat.get("gr_name"), stat.get("gid")):
        return None
    if args.get("mode") is not None:
        mode = wanted_mode(args["mode"])
        try:
            current = int(str(stat.get("mode")), 8)
        except ValueError:
            return None
        if mode is None or mode != current:
            return None
    return {
        "changed": False,
        "path": stat.get("path"),
        "state": "file",
        "uid": stat.get("uid"),
        "gid": stat.get("gid"),
        "owner": stat.get("pw_name"),
        "group": stat.get("gr_name"),
        "mode": stat.get("mode"),
        "size": stat.get("size"),
    }


def skip_unchanged_file_call(action) -> None:
    """Make ``action`` (a copy action instance) answer its attribute-only `file` call from its own `stat`."""
    execute_module = action._execute_module  # bound as the class resolves it (Mitogen's mixin or ActionBase)
    remote_stat = action._execute_remote_stat
    seen: dict[str, dict] = {}

    def _execute_remote_stat(path, all_vars, follow, tmp=None, checksum=True):
        stat = remote_stat(path, all_vars=all_vars, follow=follow, tmp=tmp, checksum=checksum)
        if follow:
            seen.pop(path, None)  # a followed link's stat does not describe the path the file call would touch
        else:
            seen[path] = dict(stat, path=path)
        return stat

    def _execute_module(module_name=None, module_args=None, *args, **kwargs):
        if module_name in ("ansible.legacy.file", "ansible.builtin.file") and module_args:
            dest = module_args.get("dest") or module_args.get("path")
            result = unchanged_result(module_args, seen.get(dest))
            if result is not None:
                return result  # nothing would change: no diff to show
        return execute_module(module_name, module_args, *args, **kwargs)

    action._execute_remote_stat = _execute_remote_stat
    action._execute_module = _execute_module
