"""Runs inside Mitogen's contexts on the host: forwarded to every new context ahead of time (never fetched).

Kept to the standard library and Mitogen so that it imports anywhere Mitogen itself runs.
"""

from __future__ import annotations

import mitogen.core
import mitogen.parent


@mitogen.core.takes_econtext
def prime_id_block(start: int, end: int, econtext) -> None:
    """Hand this context a block of context IDs from the controller, sent behind its first messages.

    A context that starts a child (Ansible's fork parent, a become context) needs an ID for it, and a fresh context
    has none: without this it stops and asks the controller (``ALLOCATE_ID``), one round trip for each of the
    login context and the become context of every run. Upgrading the router here is what Mitogen does on the first
    child anyway.
    """
    mitogen.parent.upgrade_router(econtext)
    allocator = econtext.router.id_allocator
    with allocator.lock:
        allocator.it = iter(range(start, end))
