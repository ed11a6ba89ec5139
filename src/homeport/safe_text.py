"""The ONE place that makes host-provided text safe for the operator's terminal (issue 27, finding 4).

Text that comes from a host or its containers (container logs in a failed deploy's report and in ``homeport logs``,
container and service names, a host file's diff, the host's stderr in an error) may hold terminal control sequences:
OSC 52 writes the operator's clipboard, OSC 8 hides a link target, OSC 0/2 set the window title, SGR 8 conceals text,
CSI moves the cursor or erases the screen, a carriage return overwrites what was printed before it. :func:`clean`
shows every such character escaped (``\\x1b]52;...``) and keeps the printable text, so the operator sees what the
host sent without the terminal acting on it. Printed through rich, the result still has to be a ``Text`` (or go
through :func:`markup`), never a markup string: a log line holding ``[link=...]`` or ``[/]`` is text, not markup.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from typing import IO, Any

from rich.markup import escape as _markup_escape
from rich.text import Text

# C0 controls but tab and newline, DEL, the C1 controls (U+0080-U+009F: 8-bit CSI, OSC, ST, ...) and the Unicode
# bidirectional embeddings/overrides/isolates (they reorder what is shown, "Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any) -> str:
    """``value`` as text with every control character shown escaped (``\\x1b``, ``\\r``: see the module doc);
    tab, newline and all printable characters (any script) stay; a CRLF line end becomes a newline."""
    text = str(value).replace("\r\n", "\n")
    return _CONTROL.sub(_escaped, text)


def text(value: Any, style: str = "") -> Text:
    """A rich ``Text`` of the cleaned value: never parsed as markup."""
    return Text(clean(value), style=style)


def markup(value: Any) -> str:
    """The cleaned value escaped for a rich markup string (``console.print(f"... {markup(x)}")``)."""
    return _markup_escape(clean(value))


def clean_tree(value: Any) -> Any:
    """Every string in a structure of dicts/lists/tuples cleaned (keys too); other values as they are."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(clean_tree(v) for v in value)
    return value


def copy_stream(chunks: Iterable[bytes], out: IO[str]) -> None:
    """Write a byte stream (a program's output, read chunk by chunk as it arrives) cleaned to ``out``, flushing each
    chunk. UTF-8 is decoded across chunk borders; bytes that are not UTF-8 are shown as ``\\xNN``; a CR that ends a
    chunk waits for the next one (CRLF becomes a newline)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
    held = ""
    for chunk in chunks:
        part = held + decoder.decode(chunk)
        held = "\r" if part.endswith("\r") else ""
        if held:
            part = part[:-1]
        if part:
            out.write(clean(part))
            out.flush()
    rest = held + decoder.decode(b"", final=True)
    if rest:
        out.write(clean(rest))
        out.flush()
