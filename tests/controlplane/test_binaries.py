"""Finding and building the control-plane binaries: versions, the envtest variables, the cache."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane import binaries
from controlplane.binaries import (
    BINARY_NAMES,
    BinariesError,
    BuildRecipe,
    Resolution,
    asset_variable,
    build_lock,
    default_cache_root,
    ensure,
    go_directive,
    go_too_old,
    kubernetes_ldflags,
    module_version,
    read_versions,
    require_all,
    resolve,
    run_recipe,
)

K8S_GOMOD = """module vramfit.io/tools/k8sbins

go 1.26.0

tool k8s.io/kubernetes/cmd/kube-apiserver

require (
\tgithub.com/x/y v1.0.0 // indirect
\tk8s.io/kubernetes v1.37.2 // indirect
)

replace (
\tk8s.io/api => k8s.io/api v0.37.2
)
"""


@pytest.mark.parametrize(
    ("text", "module", "expected"),
    [
        (K8S_GOMOD, "k8s.io/kubernetes", "v1.37.2"),
        (
            "module m\n\nrequire go.etcd.io/etcd/server/v3 v3.6.16\n",
            "go.etcd.io/etcd/server/v3",
            "v3.6.16",
        ),
        ("module m\nrequire (\n  a v1.0.0\n  b v2.0.0 // c\n)\n", "b", "v2.0.0"),
    ],
    ids=["require-block-indirect", "single-line-require", "comment-after-version"],
)
def test_module_version_reads_require_directives(text: str, module: str, expected: str) -> None:
    assert module_version(text, module, "go.mod") == expected


@pytest.mark.parametrize(
    "text",
    [
        "module m\nreplace k8s.io/kubernetes => k8s.io/kubernetes v1.37.2\n",
        "module m\n// require k8s.io/kubernetes v1.37.2\n",
        "module m\nrequire k8s.io/kubernetes-extra v1.0.0\n",
        "",
    ],
    ids=["only-a-replace", "commented-out", "other-module-with-same-prefix", "empty"],
)
def test_module_version_missing_names_the_file(text: str) -> None:
    with pytest.raises(BinariesError, match=r"tools/x/go.mod: no 'require k8s.io/kubernetes"):
        module_version(text, "k8s.io/kubernetes", "tools/x/go.mod")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(K8S_GOMOD, "1.26.0"), ("module m\ngo 1.26\n", "1.26"), ("go 1.24.3 // pinned\n", "1.24.3")],
    ids=["three-part", "two-part", "trailing-comment"],
)
def test_go_directive(text: str, expected: str) -> None:
    assert go_directive(text, "go.mod") == expected


def test_go_directive_missing_is_an_error() -> None:
    with pytest.raises(BinariesError, match="no 'go <version>' directive"):
        go_directive("module m\n", "go.mod")


@pytest.mark.parametrize(
    ("toolchain", "required", "too_old"),
    [
        ("go1.26.8", "1.26.0", False),
        ("go1.26.0", "1.26", False),
        ("go1.27.1", "1.26.0", False),
        ("go1.25.9", "1.26.0", True),
        ("go1.26rc1", "1.26.1", True),
        ("", "1.26.0", True),
    ],
    ids=["newer-patch", "equal-padded", "newer-minor", "older-minor", "release-candidate", "none"],
)
def test_go_too_old(toolchain: str, required: str, too_old: bool) -> None:
    assert go_too_old(toolchain, required) is too_old


def test_kubernetes_ldflags_stamp_the_release() -> None:
    flags = kubernetes_ldflags("v1.37.2")
    for stamp in (
        "-X k8s.io/component-base/version.gitVersion=v1.37.2",
        "-X k8s.io/component-base/version.gitMinor=37",
        "-X k8s.io/client-go/pkg/version.gitMajor=1",
        "-X k8s.io/component-base/version.gitTreeState=clean",
    ):
        assert stamp in flags
    assert flags.startswith("-s -w ")


def test_kubernetes_ldflags_reject_a_non_release() -> None:
    with pytest.raises(BinariesError, match="not a Kubernetes release"):
        kubernetes_ldflags("v0.0.0-master")


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("etcd", "TEST_ASSET_ETCD"),
        ("kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
        ("kube-controller-manager", "TEST_ASSET_KUBE_CONTROLLER_MANAGER"),
        ("kube-scheduler", "TEST_ASSET_KUBE_SCHEDULER"),
        ("kubectl", "TEST_ASSET_KUBECTL"),
    ],
    ids=BINARY_NAMES,
)
def test_asset_variable_follows_envtest(name: str, variable: str) -> None:
    assert asset_variable(name) == variable


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XDG_CACHE_HOME": "/c", "HOME": "/h"}, "/c/vramfit/bin"),
        ({"HOME": "/h"}, "/h/.cache/vramfit/bin"),
        ({"XDG_CACHE_HOME": "", "HOME": "/h"}, "/h/.cache/vramfit/bin"),
    ],
    ids=["xdg", "home", "empty-xdg"],
)
def test_default_cache_root(env: dict[str, str], expected: str) -> None:
    assert default_cache_root(env) == Path(expected)


def test_read_versions_from_the_repository_go_mod_files() -> None:
    versions = read_versions()
    assert versions.kubernetes.startswith("v1.37.")
    assert versions.etcd.startswith("v3.6.")
    assert versions.cache_key == f"k8s-{versions.kubernetes}-etcd-{versions.etcd}"


def test_read_versions_names_a_missing_go_mod(tmp_path: Path) -> None:
    with pytest.raises(BinariesError, match=r"cannot read .*k8sbins/go.mod"):
        read_versions(tmp_path)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _folder(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        _executable(root / name)
    root.mkdir(parents=True, exist_ok=True)
    return root


ALL = BINARY_NAMES
ENVTEST = ("etcd", "kube-apiserver", "kubectl")  # what setup-envtest downloads


@dataclass(frozen=True)
class ResolveCase:
    id: str
    assets: tuple[str, ...] | None  # binaries in KUBEBUILDER_ASSETS (None: variable unset)
    cache: tuple[str, ...]  # binaries already in the cache
    overrides: dict[str, str]  # binary -> path (under tmp_path) named by TEST_ASSET_<NAME>
    sources: dict[str, str]  # expected: where each found binary comes from
    missing: tuple[str, ...]  # expected: what must be built


RESOLVE_CASES = [
    ResolveCase("assets-complete", ALL, (), {}, dict.fromkeys(ALL, "KUBEBUILDER_ASSETS"), ()),
    ResolveCase("cache-complete", None, ALL, {}, dict.fromkeys(ALL, "cache"), ()),
    ResolveCase("nothing-anywhere", None, (), {}, {}, ALL),
    ResolveCase(
        "envtest-assets-lack-scheduler-and-controller-manager",
        ENVTEST,
        (),
        {},
        dict.fromkeys(ENVTEST, "KUBEBUILDER_ASSETS"),
        ("kube-controller-manager", "kube-scheduler"),
    ),
    ResolveCase(
        "envtest-assets-plus-cached-scheduler-and-controller-manager",
        ENVTEST,
        ("kube-scheduler", "kube-controller-manager", "etcd"),
        {},
        {
            **dict.fromkeys(ENVTEST, "KUBEBUILDER_ASSETS"),
            "kube-scheduler": "cache",
            "kube-controller-manager": "cache",
        },
        (),
    ),
    ResolveCase(
        "test-asset-beats-assets-and-cache",
        ALL,
        ALL,
        {"kube-apiserver": "own/kube-apiserver"},
        {**dict.fromkeys(ALL, "KUBEBUILDER_ASSETS"), "kube-apiserver": "TEST_ASSET"},
        (),
    ),
    ResolveCase(
        "test-asset-alone",
        None,
        (),
        {"kube-scheduler": "own/sched"},
        {"kube-scheduler": "TEST_ASSET"},
        ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"),
    ),
]


@pytest.mark.parametrize("case", RESOLVE_CASES, ids=[c.id for c in RESOLVE_CASES])
def test_resolve_follows_the_envtest_precedence(tmp_path: Path, case: ResolveCase) -> None:
    env: dict[str, str] = {}
    if case.assets is not None:
        env["KUBEBUILDER_ASSETS"] = str(_folder(tmp_path / "assets", case.assets))
    cache_dir = _folder(tmp_path / "cache", case.cache)
    for name, relative in case.overrides.items():
        env[asset_variable(name)] = str(_executable(tmp_path / relative))
    resolution = resolve(env, cache_dir)
    assert {n: loc.source for n, loc in resolution.found.items()} == case.sources
    assert resolution.missing == case.missing
    for name, relative in case.overrides.items():
        assert resolution.found[name].path == tmp_path / relative


def test_resolve_ignores_a_file_that_is_not_executable(tmp_path: Path) -> None:
    assets = _folder(tmp_path / "assets", ALL)
    (assets / "kubectl").chmod(0o644)
    resolution = resolve({"KUBEBUILDER_ASSETS": str(assets)}, tmp_path / "cache")
    assert resolution.missing == ("kubectl",)


def test_resolve_reports_every_bad_override_at_once(tmp_path: Path) -> None:
    env = {
        "KUBEBUILDER_ASSETS": str(tmp_path / "no-such-folder"),
        "TEST_ASSET_ETCD": str(tmp_path / "no-etcd"),
        "TEST_ASSET_KUBECTL": str(tmp_path),  # a folder, not a file
    }
    with pytest.raises(BinariesError) as caught:
        resolve(env, tmp_path / "cache")
    message = str(caught.value)
    assert "KUBEBUILDER_ASSETS=" in message and "not a directory" in message
    assert "TEST_ASSET_ETCD=" in message
    assert "TEST_ASSET_KUBECTL=" in message


def test_require_all_says_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    resolution = Resolution(found={}, missing=("kube-scheduler", "kubectl"), cache_dir=tmp_path)
    with pytest.raises(BinariesError) as caught:
        require_all(resolution)
    message = str(caught.value)
    assert "kube-scheduler, kubectl" in message
    assert "make binaries" in message and "KUBEBUILDER_ASSETS" in message


def test_ensure_with_complete_assets_needs_no_go(tmp_path: Path) -> None:
    assets = _folder(tmp_path / "assets", ALL)
    env = {"KUBEBUILDER_ASSETS": str(assets), "PATH": str(tmp_path / "empty-path")}
    found, resolution = ensure(env, cache_root=tmp_path / "cache")
    assert found.kube_scheduler == assets / "kube-scheduler"
    assert resolution.missing == ()
    assert not (tmp_path / "cache").exists()


def test_ensure_without_go_says_what_to_install(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty-path"), "HOME": str(tmp_path)}
    with pytest.raises(BinariesError) as caught:
        ensure(env, cache_root=tmp_path / "cache")
    message = str(caught.value)
    assert "Go >= 1.26" in message
    assert "KUBEBUILDER_ASSETS" in message


def test_main_ensure_prints_where_each_binary_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assets = _folder(tmp_path / "assets", ALL)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    for name in ALL:
        monkeypatch.delenv(asset_variable(name), raising=False)
    assert binaries.main(["ensure"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(ALL)
    assert all("(KUBEBUILDER_ASSETS)" in line for line in lines)


def test_main_reports_errors_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_ASSET_ETCD", str(tmp_path / "missing"))
    assert binaries.main(["ensure"]) == 1
    assert "controlplane.binaries: error: TEST_ASSET_ETCD=" in capsys.readouterr().err


def test_build_lock_makes_a_second_builder_wait(tmp_path: Path) -> None:
    order: list[str] = []
    first_holds = threading.Event()
    second_out = io.StringIO()

    def first() -> None:
        with build_lock(tmp_path, io.StringIO()):
            order.append("first in")
            first_holds.set()
            time.sleep(0.3)
            order.append("first out")

    def second() -> None:
        first_holds.wait()
        with build_lock(tmp_path, second_out):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]
    assert "waiting for another build" in second_out.getvalue()


HELLO_GO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go") }\n'


def _hello_module(root: Path, source: str) -> Path:
    root.mkdir()
    (root / "go.mod").write_text("module example.invalid/hello\n\ngo 1.26.0\n")
    (root / "main.go").write_text(source)
    return root


def _go() -> str:
    go = shutil.which("go")
    assert go is not None, "these tests build with the real Go toolchain (Go >= 1.26)"
    return go


def test_run_recipe_builds_into_place_and_leaves_no_staging(tmp_path: Path) -> None:
    module = _hello_module(tmp_path / "hello", HELLO_GO)
    cache = tmp_path / "cache"
    recipe = BuildRecipe(module, {"hello": "example.invalid/hello"}, ldflags="-s -w")
    run_recipe(_go(), recipe, cache, dict(os.environ), io.StringIO())
    assert sorted(p.name for p in cache.iterdir()) == ["hello"]
    assert subprocess.run([cache / "hello"], capture_output=True, text=True, check=True).stdout == (
        "hello from go\n"
    )


def test_a_failed_build_leaves_neither_binary_nor_staging(tmp_path: Path) -> None:
    module = _hello_module(tmp_path / "hello", "package main\n\nfunc main() { syntax error }\n")
    cache = tmp_path / "cache"
    out = io.StringIO()
    recipe = BuildRecipe(module, {"hello": "example.invalid/hello"}, ldflags="-s -w")
    with pytest.raises(BinariesError, match="failed with exit code"):
        run_recipe(_go(), recipe, cache, dict(os.environ), out)
    assert list(cache.iterdir()) == []
    assert "syntax error" in out.getvalue()
