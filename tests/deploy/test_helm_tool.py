"""Finding and building helm (``controlplane.helm``): the pin, the override, the cache, the
error that says what to do, and the built binary's own version."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path

import pytest

from controlplane.binaries import BinariesError
from controlplane.helm import (
    HELM_PACKAGE,
    HelmPin,
    ensure,
    find,
    helm_ldflags,
    helm_recipe,
    locate,
    read_pin,
)

HELMBIN_GOMOD = """module vramfit.io/tools/helmbin

go 1.26.0

tool helm.sh/helm/v4/cmd/helm

require (
\tdario.cat/mergo v1.0.1 // indirect
\thelm.sh/helm/v4 v4.3.2 // indirect
)
"""


def _tools(tmp_path: Path, gomod: str = HELMBIN_GOMOD) -> Path:
    (tmp_path / "tools" / "helmbin").mkdir(parents=True)
    (tmp_path / "tools" / "helmbin" / "go.mod").write_text(gomod, encoding="utf-8")
    return tmp_path / "tools"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_pin_comes_from_the_wrapper_module(tmp_path: Path) -> None:
    pin = read_pin(_tools(tmp_path))
    assert pin == HelmPin(version="v4.3.2", go="1.26.0")
    assert pin.cache_key == "helm-v4.3.2"


def test_the_repository_pins_a_helm_v4_release() -> None:
    assert read_pin().version.startswith("v4.")


@pytest.mark.parametrize(
    ("gomod", "message"),
    [
        ("module m\n\ngo 1.26.0\n", "no 'require helm.sh/helm/v4 <version>' line"),
        ("module m\nrequire helm.sh/helm/v4 v4.3.2\n", "no 'go <version>' directive"),
    ],
    ids=["no-helm-require", "no-go-directive"],
)
def test_a_broken_pin_names_the_file(tmp_path: Path, gomod: str, message: str) -> None:
    with pytest.raises(BinariesError, match=message):
        read_pin(_tools(tmp_path, gomod))


@pytest.mark.parametrize(
    ("version", "ok"),
    [("v4.3.2", True), ("v4.10.0", True), ("v3.19.0", False), ("v4.3.2-rc.1", False)],
    ids=["release", "two-digit-minor", "helm-3", "pre-release"],
)
def test_ldflags_stamp_a_v4_release_only(version: str, ok: bool) -> None:
    if ok:
        flags = helm_ldflags(version)
        assert f"-X helm.sh/helm/v4/internal/version.version={version}" in flags
        assert "-X helm.sh/helm/v4/internal/version.gitTreeState=clean" in flags
    else:
        with pytest.raises(BinariesError, match="is not a helm v4 release"):
            helm_ldflags(version)


def test_the_recipe_builds_helm_in_the_wrapper_module(tmp_path: Path) -> None:
    recipe = helm_recipe(HelmPin("v4.3.2", "1.26.0"), tmp_path)
    assert recipe.module_dir == tmp_path / "helmbin"
    assert dict(recipe.packages) == {"helm": HELM_PACKAGE}


@pytest.mark.parametrize(
    ("override", "cached", "expected"),
    [
        (True, True, "TEST_ASSET"),
        (False, True, "cache"),
        (False, False, None),
    ],
    ids=["override-wins", "cache", "nothing"],
)
def test_find_looks_in_the_override_then_the_cache(
    tmp_path: Path, override: bool, cached: bool, expected: str | None
) -> None:
    cache_dir = tmp_path / "cache"
    env = {"TEST_ASSET_HELM": str(_executable(tmp_path / "elsewhere" / "helm"))} if override else {}
    if cached:
        _executable(cache_dir / "helm")
    located = find(env, cache_dir)
    assert (located.source if located else None) == expected


def test_an_override_that_names_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BinariesError, match=r"TEST_ASSET_HELM=.*no executable file there"):
        find({"TEST_ASSET_HELM": str(tmp_path / "missing")}, tmp_path)


def test_locate_says_how_to_get_helm(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with pytest.raises(BinariesError) as raised:
        locate(env, _tools(tmp_path))
    message = str(raised.value)
    assert "helm v4.3.2 is missing" in message
    assert "make binaries" in message
    assert str(tmp_path / "cache" / "vramfit" / "bin" / "helm-v4.3.2") in message


def test_ensure_with_an_override_needs_no_go(tmp_path: Path) -> None:
    helm = _executable(tmp_path / "helm")
    env = {"TEST_ASSET_HELM": str(helm), "PATH": ""}
    assert ensure(env, tools_dir=_tools(tmp_path), out=io.StringIO()).path == helm


def test_ensure_without_go_says_what_to_do(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with pytest.raises(BinariesError, match=r"cannot build helm: .*TEST_ASSET_HELM"):
        ensure(env, tools_dir=_tools(tmp_path), out=io.StringIO())


@pytest.mark.integration
def test_the_built_helm_is_the_pinned_release() -> None:
    helm = locate()
    result = subprocess.run(
        [str(helm), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "HELM_CONFIG_HOME": "/nonexistent"},
    )
    assert result.stdout.strip() == read_pin().version
