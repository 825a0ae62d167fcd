"""A minimal RFC 6902 applier (``add`` and ``test``), to check the patches the webhook returns."""

from __future__ import annotations

import copy
from typing import Any


def _token(raw: str) -> str:
    return raw.replace("~1", "/").replace("~0", "~")


def apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for op in ops:
        *parents, last = [_token(t) for t in op["path"].split("/")[1:]]
        target: Any = out
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if op["op"] == "add":
            if isinstance(target, list):
                target.insert(len(target) if last == "-" else int(last), op["value"])
            else:
                target[_token(last)] = op["value"]
        elif op["op"] == "test":
            assert target[last] == op["value"]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return out
