"""``HOST:PORT`` listen addresses, one rule for the extender's and the node agent's ``--listen``.

Both components take an address to serve on. The rule: ``HOST:PORT``, an IPv6 host in brackets
(``[::1]:8888``, as URLs write it: without brackets ``::1:8888`` is ambiguous), a port of ASCII
digits in 1..65535. Two choices stay with the caller, because the two components differ on
purpose: ``any_host`` (the node agent serves every interface on ``:9402``; the extender, which
binds pods, wants its host said) and ``allow_port_zero`` (the agent's tests ask the kernel for a
free port). Errors are ``ValueError`` naming the value (capped) and what is wrong, without the
flag: the caller prefixes ``--listen``. Pure.
"""

from __future__ import annotations

import re

from placement.fields import quote

_PORT = re.compile(r"[0-9]{1,5}")
_EXAMPLE = "such as 127.0.0.1:8888 or [::1]:8888"


def parse_listen(
    text: str, *, any_host: str | None = None, allow_port_zero: bool = False
) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` to ``(host, port)``, brackets removed (pure).

    An empty host (``:9402``) becomes ``any_host``, or is an error when that is ``None``. The
    port is 1..65535, or 0..65535 with ``allow_port_zero``. Raises ``ValueError``.
    """
    shown = quote(text)
    if not isinstance(text, str):
        raise ValueError(f"{shown} is not HOST:PORT {_EXAMPLE}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{shown}: an IPv6 host opened with '[' must close with ']'")
        host, rest = text[1:end], text[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"{shown} is not [HOST]:PORT: expected ':PORT' after ']'")
        port_text = rest[1:]
        if not host:
            raise ValueError(f"{shown}: the host in brackets is empty")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{shown} is not HOST:PORT {_EXAMPLE}")
        if ":" in host:
            raise ValueError(f"{shown}: write an IPv6 host in brackets, such as [::1]:8888")
        if not host:
            if any_host is None:
                raise ValueError(f"{shown} has no host: {_EXAMPLE}")
            host = any_host
    if any(c.isspace() or not c.isprintable() or c in "[]/" for c in host):
        raise ValueError(f"{shown}: the host {quote(host)} is not a host name or address")
    low = 0 if allow_port_zero else 1
    if not _PORT.fullmatch(port_text) or not low <= int(port_text) <= 65535:
        raise ValueError(f"{shown}: the port must be a number in {low}..65535")
    return host, int(port_text)


def format_listen(host: str, port: int) -> str:
    """``(host, port)`` back to the text ``parse_listen`` reads: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
