"""``--listen`` addresses: one rule for the extender and the agent, with the cases where their
two old parsers disagreed (or both let a mistake through) named in the ids."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from placement.fields import MAX_QUOTE
from placement.listen import format_listen, parse_listen


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        pytest.param("127.0.0.1:8888", {}, ("127.0.0.1", 8888), id="ipv4"),
        pytest.param("localhost:1", {}, ("localhost", 1), id="name-lowest-port"),
        pytest.param("node.example:65535", {}, ("node.example", 65535), id="highest-port"),
        pytest.param("[::1]:8888", {}, ("::1", 8888), id="ipv6-in-brackets"),
        pytest.param("[::]:9402", {}, ("::", 9402), id="ipv6-any"),
        pytest.param("[127.0.0.1]:80", {}, ("127.0.0.1", 80), id="ipv4-in-brackets"),
        pytest.param(
            ":9402", {"any_host": "0.0.0.0"}, ("0.0.0.0", 9402), id="agent-empty-host-is-any"
        ),
        pytest.param(
            "127.0.0.1:0", {"allow_port_zero": True}, ("127.0.0.1", 0), id="agent-ephemeral-port"
        ),
    ],
)
def test_parse_listen(text: str, kwargs: dict[str, Any], expected: tuple[str, int]) -> None:
    assert parse_listen(text, **kwargs) == expected


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        pytest.param(
            "nowhere",
            {},
            "'nowhere' is not HOST:PORT such as 127.0.0.1:8888 or [::1]:8888",
            id="no-port",
        ),
        pytest.param(
            ":8888",
            {},
            "':8888' has no host: such as 127.0.0.1:8888 or [::1]:8888",
            id="extender-empty-host-rejected",
        ),
        pytest.param(
            "h:0",
            {},
            "'h:0': the port must be a number in 1..65535",
            id="extender-port-zero-rejected",
        ),
        pytest.param(
            "h:70000",
            {"allow_port_zero": True},
            "'h:70000': the port must be a number in 0..65535",
            id="port-above-range",
        ),
        pytest.param(
            "h:\u0663",
            {},
            "'h:\u0663': the port must be a number in 1..65535",
            id="non-ascii-digit-port-both-old-parsers-accepted",
        ),
        pytest.param(
            "h:+80", {}, "'h:+80': the port must be a number in 1..65535", id="signed-port"
        ),
        pytest.param("h:", {}, "'h:': the port must be a number in 1..65535", id="empty-port"),
        pytest.param(
            "h:000080",
            {},
            "'h:000080': the port must be a number in 1..65535",
            id="port-over-five-digits",
        ),
        pytest.param(
            "::1:8888",
            {},
            "'::1:8888': write an IPv6 host in brackets, such as [::1]:8888",
            id="bare-ipv6-both-old-parsers-split-at-the-last-colon",
        ),
        pytest.param(
            "[::1:8888",
            {},
            "'[::1:8888': an IPv6 host opened with '[' must close with ']'",
            id="unclosed-bracket",
        ),
        pytest.param(
            "[::1]",
            {},
            "'[::1]' is not [HOST]:PORT: expected ':PORT' after ']'",
            id="bracket-without-port",
        ),
        pytest.param(
            "[::1]8888",
            {},
            "'[::1]8888' is not [HOST]:PORT: expected ':PORT' after ']'",
            id="bracket-without-colon",
        ),
        pytest.param("[]:80", {}, "'[]:80': the host in brackets is empty", id="empty-brackets"),
        pytest.param(
            "a b:80",
            {},
            "'a b:80': the host 'a b' is not a host name or address",
            id="blank-in-host",
        ),
        pytest.param(
            "h\x07:80",
            {},
            "'h\\x07:80': the host 'h\\x07' is not a host name or address",
            id="control-character-in-host",
        ),
        pytest.param(
            "h]:80",
            {},
            "'h]:80': the host 'h]' is not a host name or address",
            id="stray-bracket-agent-stripped-silently",
        ),
        pytest.param(
            "x" * 300 + ":1:2",
            {},
            f"'{'x' * 79}…: write an IPv6 host in brackets, such as [::1]:8888",
            id="long-text-capped",
        ),
    ],
)
def test_parse_listen_rejects(text: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_listen(text, **kwargs)
    assert str(info.value) == message


@given(
    st.one_of(st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True), st.ip_addresses().map(str)),
    st.integers(1, 65535),
)
def test_format_listen_round_trips(host: str, port: int) -> None:
    assert parse_listen(format_listen(host, port)) == (host, port)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        host, port = parse_listen(text, any_host="0.0.0.0", allow_port_zero=True)
    except ValueError as exc:  # at most two quoted values, each capped
        assert len(str(exc)) < 2 * (MAX_QUOTE + 2) + 80
    else:
        assert host
        assert 0 <= port <= 65535
