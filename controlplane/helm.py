"""Find or build helm, which the chart tests run (``helm lint``, ``helm template``).

helm is built from ``helm.sh/helm/v4`` through the wrapper module ``tools/helmbin`` the way
``controlplane.binaries`` builds the control plane: the wrapper's go.mod pins the release, and the
binary is looked for in

1. ``TEST_ASSET_HELM`` (the envtest-style override; naming nothing usable is an error);
2. the version-keyed cache ``${XDG_CACHE_HOME:-~/.cache}/vramfit/bin/helm-<version>/``.

Whatever neither has is built into the cache under the same lock and into a temporary name
first. helm has a cache folder of its own, so a new helm release never rebuilds Kubernetes and a
new Kubernetes release never rebuilds helm. A ``helm`` on PATH is not used: the chart tests are
held to the release pinned here.

``python -m controlplane.helm ensure`` is what ``make binaries`` runs after the control plane's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from controlplane.binaries import (
    TOOLS_DIR,
    BinariesError,
    BuildRecipe,
    Located,
    asset_variable,
    build_lock,
    default_cache_root,
    go_directive,
    go_toolchain,
    module_version,
    remove_stale_staging,
    run_recipe,
)

HELM: Final = "helm"
HELM_MODULE: Final = "helm.sh/helm/v4"
HELM_PACKAGE: Final = "helm.sh/helm/v4/cmd/helm"
WRAPPER: Final = "helmbin"


@dataclass(frozen=True)
class HelmPin:
    """The helm release and the Go it needs, read from ``tools/helmbin/go.mod``."""

    version: str
    go: str

    @property
    def cache_key(self) -> str:
        return f"helm-{self.version}"


# --- pure parts ---------------------------------------------------------------------------


def helm_ldflags(version: str) -> str:
    """Pure: the linker flags that make ``helm version`` print the release (as helm's Makefile
    stamps a tagged build)."""
    if re.fullmatch(r"v4\.\d+\.\d+", version) is None:
        raise BinariesError(f"tools/{WRAPPER}/go.mod: {version!r} is not a helm v4 release")
    package = "helm.sh/helm/v4/internal/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {package}.version={version}",
            f"-X {package}.metadata=",
            f"-X {package}.gitTreeState=clean",
        ]
    )


def helm_recipe(pin: HelmPin, tools_dir: Path) -> BuildRecipe:
    """Pure: the one ``go build`` that produces helm."""
    return BuildRecipe(tools_dir / WRAPPER, {HELM: HELM_PACKAGE}, ldflags=helm_ldflags(pin.version))


# --- I/O shell ----------------------------------------------------------------------------


def read_pin(tools_dir: Path = TOOLS_DIR) -> HelmPin:
    """The pinned helm release from ``tools/helmbin/go.mod``."""
    path = tools_dir / WRAPPER / "go.mod"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BinariesError(f"cannot read {path}: {exc.strerror or exc}") from None
    return HelmPin(
        version=module_version(text, HELM_MODULE, str(path)), go=go_directive(text, str(path))
    )


def cache_dir_for(pin: HelmPin, env: Mapping[str, str], cache_root: Path | None = None) -> Path:
    return (cache_root or default_cache_root(env)) / pin.cache_key


def find(env: Mapping[str, str], cache_dir: Path) -> Located | None:
    """helm from ``TEST_ASSET_HELM`` or the cache; None when neither has it."""
    variable = asset_variable(HELM)
    override = env.get(variable, "")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BinariesError(f"{variable}={override}: no executable file there")
        return Located(HELM, path.absolute(), "TEST_ASSET")
    cached = cache_dir / HELM
    if cached.is_file() and os.access(cached, os.X_OK):
        return Located(HELM, cached, "cache")
    return None


def locate(env: Mapping[str, str] | None = None, tools_dir: Path = TOOLS_DIR) -> Path:
    """helm without building it (what the test fixtures use), or an error saying how to get it."""
    environ = os.environ if env is None else env
    pin = read_pin(tools_dir)
    cache_dir = cache_dir_for(pin, environ)
    located = find(environ, cache_dir)
    if located is None:
        raise BinariesError(
            f"helm {pin.version} is missing (looked in {asset_variable(HELM)} and {cache_dir}); "
            "run `make binaries` (builds it with Go >= "
            f"{pin.go}) or set {asset_variable(HELM)} to a helm {pin.version} binary"
        )
    return located.path


def ensure(
    env: Mapping[str, str] | None = None,
    *,
    tools_dir: Path = TOOLS_DIR,
    cache_root: Path | None = None,
    out: TextIO = sys.stderr,
) -> Located:
    """helm, built into the cache when neither the override nor the cache has it."""
    environ = dict(os.environ if env is None else env)
    pin = read_pin(tools_dir)
    cache_dir = cache_dir_for(pin, environ, cache_root)
    located = find(environ, cache_dir)
    if located is not None:
        return located
    try:
        go = go_toolchain(environ, pin.go)
    except BinariesError as exc:
        raise BinariesError(
            f"cannot build helm: {exc} (or set {asset_variable(HELM)} to a helm {pin.version})"
        ) from None
    with build_lock(cache_dir, out):
        remove_stale_staging(cache_dir)
        located = find(environ, cache_dir)  # another process may have built it meanwhile
        if located is None:
            started = time.monotonic()
            out.write(f"building helm {pin.version} into {cache_dir}; this takes minutes\n")
            run_recipe(go, helm_recipe(pin, tools_dir), cache_dir, environ, out)
            out.write(f"built helm in {time.monotonic() - started:.0f} s\n")
            located = find(environ, cache_dir)
    if located is None:
        raise BinariesError(f"the build reported success but {cache_dir / HELM} is not there")
    return located


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controlplane.helm", description="Find or build helm for the chart tests."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="build helm if it is missing, then print where it is")
    commands.add_parser("version", help="print the pinned helm release")
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            pin = read_pin()
            print(f"helm {pin.version}\ngo >= {pin.go}")
            return 0
        located = ensure()
    except BinariesError as exc:
        sys.stderr.write(f"controlplane.helm: error: {exc}\n")
        return 1
    print(f"{HELM:15} {located.path}  ({located.source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
