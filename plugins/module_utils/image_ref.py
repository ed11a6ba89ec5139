"""Docker image references: Docker's own grammar, so that a reference the engine would refuse (or a value that is
not a reference at all: ``postgres;rm -rf /``, ``$(id)``, a newline) is refused in the preflight, naming the
variable and what is wrong (issue 27, finding 8b).

The grammar is distribution/reference's (the package the Docker engine and CLI parse references with),
https://github.com/distribution/reference/blob/main/regexp.go and reference.go::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | '[' IPv6address ']'
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ['/' path-component]*
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex (at least 32 hex digits)

plus reference.go's NameTotalLengthMax (255) and ParseNormalizedNamed's rule that the first component is a domain
only with a '.' or ':' in it or as ``localhost`` (so ``Postgres`` is a path component in upper case: refused).
Go's ``\\w`` is ASCII only, hence the explicit classes below.
"""

from __future__ import annotations

import re

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

REFERENCE_RE = re.compile(
    r"(?P<name>(?:(?P<domain>" + _DOMAIN + r")/)?" + _REMOTE_NAME + r")(?::" + _TAG + r")?(?:@" + _DIGEST + r")?"
)
NAME_TOTAL_LENGTH_MAX = 255
# every character the grammar can hold anywhere (domain, path, tag, digest, port, IPv6 brackets)
_ALLOWED_CHARS = re.compile(r"[A-Za-z0-9._:/@\[\]+-]")
GRAMMAR = "[registry[:port]/]name[:tag][@digest], the name in lower case"


def image_reference_problem(value) -> str | None:
    """What is wrong with ``value`` as a Docker image reference, or None when it is one."""
    ref = "" if value is None else str(value)
    if not ref:
        return "it is empty"
    bad = next((c for c in ref if not _ALLOWED_CHARS.fullmatch(c)), None)
    if bad is not None:
        return f"{bad!r} is not allowed in an image reference ({GRAMMAR})"
    match = REFERENCE_RE.fullmatch(ref)
    if match is None:
        first = ref.split("/", 1)[0]
        lower = ref.lower() if "/" not in ref or not _is_domain(first) else first + "/" + ref.split("/", 1)[1].lower()
        if lower != ref and REFERENCE_RE.fullmatch(lower):
            return "the repository name must be lower-case"
        return f"it does not match Docker's reference grammar ({GRAMMAR})"
    domain = match.group("domain")
    if domain is not None and not _is_domain(domain) and not re.fullmatch(_PATH_COMPONENT, domain):
        # `Org/app`: without a '.' or ':' (or localhost) the first part is a path component, lower case only
        return "the repository name must be lower-case"
    if len(match.group("name")) > NAME_TOTAL_LENGTH_MAX:
        return f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
    return None


def _is_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")
