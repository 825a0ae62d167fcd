"""Every NVML call goes through here: one error mapping, and fields the driver lacks asked once.

NVML reports failures as ``NVMLError`` subclasses generated from return codes, and older
``nvidia-ml-py`` releases or drivers lack functions outright; ``NvmlCalls`` turns all of it into
``NvmlCallError`` with an ``ErrorKind`` (what the agent does about it), except a driver/library
version mismatch, which raises ``NvmlRestartRequiredError``. The ``pynvml`` module is passed in,
never imported, so tests drive the same code with a fake module.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from nodeagent.health import (
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_UNKNOWN,
    ErrorKind,
    classify,
)

log = logging.getLogger(__name__)


class NvmlRestartRequiredError(RuntimeError):
    """The NVML library and the kernel driver disagree (the driver was upgraded): restart."""


class NvmlCallError(Exception):
    """One failed NVML call, with the function that failed and what to do about it."""

    def __init__(self, function: str, code: int, message: str) -> None:
        super().__init__(f"{function}: {message} (NVML error {code})")
        self.function = function
        self.code = code
        self.kind = classify(code)


def text(value: object) -> str:
    """A string NVML returned, as ``str`` whichever of bytes or str this binding gives."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlCalls:
    """The injected ``pynvml`` module behind one error mapping, and the fields it lacks."""

    def __init__(self, nvml: ModuleType) -> None:
        self.nvml = nvml
        self.unsupported: set[str] = set()
        """``"<uuid>/<field>"`` for every field the driver does not offer; never asked again."""

    def call(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(*args)``; raises ``NvmlCallError`` or
        ``NvmlRestartRequiredError``."""
        try:
            return getattr(self.nvml, name)(*args)
        except self.nvml.NVMLError as exc:
            code = int(getattr(exc, "value", NVML_ERROR_UNKNOWN))
            if code == NVML_ERROR_LIB_RM_VERSION_MISMATCH:
                raise NvmlRestartRequiredError(f"{name}: {exc}") from exc
            raise NvmlCallError(name, code, str(exc)) from None
        except AttributeError as exc:  # a symbol this nvidia-ml-py release does not have
            if hasattr(self.nvml, name):
                raise
            raise NvmlCallError(
                name, NVML_ERROR_FUNCTION_NOT_FOUND, "function not found in this nvidia-ml-py"
            ) from exc
        except Exception as exc:
            # nvidia-ml-py raises this when an unversioned wrapper's newest variant is missing
            # from an older driver: the function is not there, an older variant may be.
            mismatch = getattr(self.nvml, "NVMLLibraryMismatchError", None)
            if mismatch is not None and isinstance(exc, mismatch):
                raise NvmlCallError(
                    name, NVML_ERROR_FUNCTION_NOT_FOUND, "this driver lacks the newest variant"
                ) from None
            raise

    def optional(self, uuid: str, name: str, fn: str, *args: Any, default: Any = None) -> Any:
        """Call ``fn``; a field the driver lacks becomes ``default`` and is not asked again."""
        key = f"{uuid}/{name}"
        if key in self.unsupported:
            return default
        try:
            return self.call(fn, *args)
        except NvmlCallError as exc:
            if exc.kind is ErrorKind.UNSUPPORTED:
                self.unsupported.add(key)
                log.info("GPU %s: %s not available (%s); publishing it as absent", uuid, name, exc)
                return default
            raise
