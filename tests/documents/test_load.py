"""Reading document files: one message for each way a file fails, and reads bounded by the limit
whatever the file is (a folder, a FIFO with no writer, ``/dev/zero``)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from documents import DocumentError, load_document, load_documents, read_bounded


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _sparse(tmp: Path, name: str, size: int) -> Path:
    path = tmp / name
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


def _fifo(tmp: Path, name: str) -> Path:
    path = tmp / name
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        pytest.param(lambda t: t / "absent.yaml", {}, "{p}: file not found", id="missing"),
        pytest.param(
            lambda t: t / "absent" / "x.yaml", {}, "{p}: file not found", id="missing-folder"
        ),
        pytest.param(
            lambda t: _write(t, "f", b"") / "x.yaml",
            {},
            "{p}: cannot read: Not a directory",
            id="file-as-folder",
        ),
        pytest.param(lambda t: t, {}, "{p}: is a folder, not a file", id="folder"),
        pytest.param(
            lambda t: _sparse(t, "big.yaml", 17 * 1024**2),
            {},
            "{p}: too large: 17825792 bytes, over the limit of 16777216 bytes (16 MiB)",
            id="too-large-file-stated-with-its-size",
        ),
        pytest.param(
            lambda t: Path("/dev/zero"),
            {"max_bytes": 1024},
            "{p}: too large: over the limit of 1024 bytes (1 KiB)",
            id="endless-stream-read-to-the-limit-only",
        ),
        pytest.param(
            lambda t: _write(t, "latin1.yaml", "name: caf\u00e9\n".encode("latin-1")),
            {},
            "{p}: not UTF-8 text: byte 0xe9 at line 1, column 10",
            id="not-utf8",
        ),
        pytest.param(
            lambda t: _write(t, "bad.yaml", b"a: [1\n"),
            {},
            "{p}: not valid YAML at line *",
            id="not-yaml-names-the-file",
        ),
        pytest.param(
            lambda t: _write(t, "bad.json", b"{]"),
            {},
            "{p}: not valid JSON at line 1, column 2: *",
            id="not-json-by-suffix",
        ),
    ],
)
def test_load_failures(
    tmp_path: Path, make: Callable[[Path], Path], kwargs: dict[str, Any], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(DocumentError) as info:
        load_document(path, **kwargs)
    expected = message.format(p=path)
    if expected.endswith("*"):
        assert str(info.value).startswith(expected[:-1])
    else:
        assert str(info.value) == expected
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("err", "message"),
    [
        pytest.param(errno.EACCES, "cannot read: permission denied", id="permission"),
        pytest.param(errno.EPERM, "cannot read: permission denied", id="not-permitted"),
        pytest.param(errno.ELOOP, f"cannot read: {os.strerror(errno.ELOOP)}", id="other"),
    ],
)
def test_open_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, message: str
) -> None:
    # Tests may run as root, which permission bits do not stop: the error is made here.
    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(err, os.strerror(err))

    path = _write(tmp_path, "x.yaml", b"a: 1\n")
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(DocumentError) as info:
        load_document(path)
    assert str(info.value) == f"{path}: {message}"


def test_fifo_without_a_writer_reads_as_empty_and_does_not_hang(tmp_path: Path) -> None:
    start = time.perf_counter()
    assert load_document(_fifo(tmp_path, "pipe.yaml")) is None
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("name", "data", "value"),
    [
        pytest.param("s.yaml", b"a: 1\n", {"a": 1}, id="yaml"),
        pytest.param("s.yml", b"", None, id="empty"),
        pytest.param("p.json", b'{"a": 1e3}', {"a": 1000.0}, id="json"),
        pytest.param("limit.yaml", b"a: " + b"x" * 1021, {"a": "x" * 1021}, id="exactly-the-limit"),
    ],
)
def test_load_document(tmp_path: Path, name: str, data: bytes, value: Any) -> None:
    assert load_document(_write(tmp_path, name, data), max_bytes=1024) == value


def test_load_document_takes_a_string_path(tmp_path: Path) -> None:
    assert load_document(str(_write(tmp_path, "s.yaml", b"a: 1\n"))) == {"a": 1}


def test_load_documents_reads_a_stream(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.yaml", b"kind: A\n---\nkind: B\n")
    assert load_documents(path) == [{"kind": "A"}, {"kind": "B"}]
    with pytest.raises(DocumentError, match="holds 2 YAML documents"):
        load_document(path)


def test_read_bounded_reads_no_more_than_the_limit_and_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(DocumentError, match="too large"):
        read_bounded(Path("/dev/zero"), max_bytes=3 * 1024**2)
    assert sum(asked) == 3 * 1024**2 + 1
