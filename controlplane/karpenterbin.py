"""Find or build Karpenter with its kwok cloud provider, and its CRDs, for the autoscaler tests.

Karpenter is built from ``sigs.k8s.io/karpenter/kwok`` through the wrapper module
``tools/karpenterbin`` the way ``controlplane.binaries`` builds the control plane: the wrapper's
go.mod pins the release (v1.14.1: v1.15.0 needs Go 1.26.9, newer than the toolchain these
builds use), and the binary and the CRDs it needs (NodePool, NodeClaim, NodeOverlay,
CapacityBuffer, KWOKNodeClass, copied from the module's source) are looked for in

1. ``TEST_ASSET_KARPENTER_KWOK`` (a binary; its CRDs then come from the module cache);
2. the version-keyed cache ``${XDG_CACHE_HOME:-~/.cache}/vramfit/bin/karpenter-<version>/``.

Whatever is missing is built into the cache under the same lock, niced (it takes minutes).
``python -m controlplane.karpenterbin ensure`` builds it; only the autoscaler tests need it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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
    asset_variable,
    build_lock,
    default_cache_root,
    go_build_env,
    go_directive,
    go_toolchain,
    module_version,
    run_recipe,
)

BINARY: Final = "karpenter-kwok"
MODULE: Final = "sigs.k8s.io/karpenter"
PACKAGE: Final = "sigs.k8s.io/karpenter/kwok"
WRAPPER: Final = "karpenterbin"
CRD_FOLDERS: Final = ("kwok/charts/crds", "kwok/apis/crds")


@dataclass(frozen=True)
class KarpenterPin:
    """The Karpenter release and the Go it needs, read from ``tools/karpenterbin/go.mod``."""

    version: str
    go: str

    @property
    def cache_key(self) -> str:
        return f"karpenter-{self.version}"


@dataclass(frozen=True)
class Karpenter:
    """The built provider and the folder of CRDs it needs."""

    binary: Path
    crds: Path
    version: str


def recipe(pin: KarpenterPin, tools_dir: Path) -> BuildRecipe:
    """Pure: the one ``go build`` that produces the kwok provider, its version stamped."""
    ldflags = f"-s -w -X sigs.k8s.io/karpenter/pkg/operator.Version={pin.version}"
    return BuildRecipe(tools_dir / WRAPPER, {BINARY: PACKAGE}, ldflags=ldflags)


def read_pin(tools_dir: Path = TOOLS_DIR) -> KarpenterPin:
    path = tools_dir / WRAPPER / "go.mod"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BinariesError(f"cannot read {path}: {exc.strerror or exc}") from None
    return KarpenterPin(module_version(text, MODULE, str(path)), go_directive(text, str(path)))


def _found(env: Mapping[str, str], cache_dir: Path, version: str) -> Karpenter | None:
    crds = cache_dir / "crds"
    if not any(crds.glob("*.yaml")):
        return None
    override = env.get(asset_variable(BINARY), "")
    binary = Path(override) if override else cache_dir / BINARY
    if override and not (binary.is_file() and os.access(binary, os.X_OK)):
        raise BinariesError(f"{asset_variable(BINARY)}={override}: no executable file there")
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    return Karpenter(binary.absolute(), crds, version)


def locate(env: Mapping[str, str] | None = None, tools_dir: Path = TOOLS_DIR) -> Karpenter:
    """Karpenter without building it (what the tests use), or an error saying how to get it."""
    environ = os.environ if env is None else env
    pin = read_pin(tools_dir)
    cache_dir = default_cache_root(environ) / pin.cache_key
    found = _found(environ, cache_dir, pin.version)
    if found is None:
        raise BinariesError(
            f"Karpenter {pin.version} (kwok provider) is missing from {cache_dir}; run "
            f"`python -m controlplane.karpenterbin ensure` (builds it with Go >= {pin.go}, "
            "several minutes)"
        )
    return found


def copy_crds(
    go: str, pin: KarpenterPin, tools_dir: Path, target: Path, env: Mapping[str, str]
) -> None:
    """Copy the CRDs out of the module's source (``go mod download`` says where it is)."""
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@{pin.version}"],
        cwd=tools_dir / WRAPPER,
        env=go_build_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BinariesError(f"go mod download {MODULE}: {result.stderr.strip() or result.stdout}")
    source = Path(json.loads(result.stdout)["Dir"])
    target.mkdir(parents=True, exist_ok=True)
    for folder in CRD_FOLDERS:
        for crd in sorted((source / folder).glob("*.yaml")):
            shutil.copyfile(crd, target / crd.name)


def ensure(
    env: Mapping[str, str] | None = None,
    *,
    tools_dir: Path = TOOLS_DIR,
    out: TextIO = sys.stderr,
) -> Karpenter:
    """Karpenter and its CRDs, built into the cache when missing."""
    environ = dict(os.environ if env is None else env)
    pin = read_pin(tools_dir)
    cache_dir = default_cache_root(environ) / pin.cache_key
    found = _found(environ, cache_dir, pin.version)
    if found is not None:
        return found
    go = go_toolchain(environ, pin.go)
    with build_lock(cache_dir, out):
        started = time.monotonic()
        copy_crds(go, pin, tools_dir, cache_dir / "crds", environ)
        if not (cache_dir / BINARY).exists() and not environ.get(asset_variable(BINARY)):
            out.write(f"building Karpenter {pin.version} (kwok) into {cache_dir}; minutes\n")
            run_recipe(go, recipe(pin, tools_dir), cache_dir, environ, out)
        out.write(f"Karpenter ready in {time.monotonic() - started:.0f} s\n")
    found = _found(environ, cache_dir, pin.version)
    if found is None:
        raise BinariesError(f"the build reported success but {cache_dir} is incomplete")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controlplane.karpenterbin",
        description="Find or build Karpenter's kwok provider and its CRDs.",
    )
    parser.add_argument("command", choices=("ensure", "version"))
    args = parser.parse_args(argv)
    os.nice(10)  # a build takes minutes of every core: let everything else go first
    try:
        if args.command == "version":
            pin = read_pin()
            print(f"karpenter {pin.version}\ngo >= {pin.go}")
            return 0
        found = ensure()
    except BinariesError as exc:
        sys.stderr.write(f"controlplane.karpenterbin: error: {exc}\n")
        return 1
    print(f"{BINARY} {found.binary}\ncrds {found.crds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
