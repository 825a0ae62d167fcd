"""Find or build the control-plane binaries: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kubectl.

The binaries come from one pinned Kubernetes release and one pinned etcd release, built from the
small Go wrapper modules in ``tools/k8sbins`` and ``tools/etcdbin``; their ``go.mod`` files are the
single source of truth for both versions. Resolution follows the envtest convention:

1. ``TEST_ASSET_<NAME>`` (for example ``TEST_ASSET_KUBE_APISERVER``) names one binary;
2. ``KUBEBUILDER_ASSETS`` names a folder holding binaries by their plain names;
3. otherwise the version-keyed cache
   ``${XDG_CACHE_HOME:-~/.cache}/vramfit/bin/k8s-<k8s version>-etcd-<etcd version>/``.

Only what none of these provides is built, into the cache, under a lock file so that two
processes never build at once, and into a temporary name first so that an interrupted build
never leaves half a binary behind.

``python -m controlplane.binaries ensure`` is what ``make binaries`` runs. helm, which only the
chart tests need, is built the same way from its own wrapper module into its own cache folder
(``controlplane.helm``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TextIO

BINARY_NAMES: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
KUBERNETES_MODULE: Final = "k8s.io/kubernetes"
ETCD_MODULE: Final = "go.etcd.io/etcd/server/v3"
MINIMUM_GO: Final = "1.26"

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
TOOLS_DIR: Final = REPO_ROOT / "tools"

Source = Literal["TEST_ASSET", "KUBEBUILDER_ASSETS", "cache"]


class BinariesError(RuntimeError):
    """The binaries cannot be found or built; the message says what to do about it."""


@dataclass(frozen=True)
class Versions:
    """The pinned releases, read from the wrapper modules' go.mod files."""

    kubernetes: str
    etcd: str
    go: str

    @property
    def cache_key(self) -> str:
        return f"k8s-{self.kubernetes}-etcd-{self.etcd}"


@dataclass(frozen=True)
class Located:
    """Where one binary was found and why that place was chosen."""

    name: str
    path: Path
    source: Source


@dataclass(frozen=True)
class Resolution:
    """The outcome of looking for every binary: what was found and what must be built."""

    found: Mapping[str, Located]
    missing: tuple[str, ...]
    cache_dir: Path


@dataclass(frozen=True)
class BinarySet:
    """Absolute paths of the binaries the control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path

    @classmethod
    def from_mapping(cls, paths: Mapping[str, Path]) -> BinarySet:
        return cls(
            etcd=paths["etcd"],
            kube_apiserver=paths["kube-apiserver"],
            kube_controller_manager=paths["kube-controller-manager"],
            kube_scheduler=paths["kube-scheduler"],
            kubectl=paths["kubectl"],
        )


@dataclass(frozen=True)
class BuildRecipe:
    """One ``go build`` invocation: which module folder, which packages, which linker flags."""

    module_dir: Path
    packages: Mapping[str, str]  # binary name -> Go package path
    ldflags: str


# --- pure parts ---------------------------------------------------------------------------


_REQUIRE_LINE = re.compile(r"^\s*(?:require\s+)?(?P<module>\S+)\s+(?P<version>v\S+)")


def module_version(gomod_text: str, module: str, where: str) -> str:
    """Pure: the version of ``module`` in a go.mod's require directives (not its replaces)."""
    in_require_block = False
    for raw in gomod_text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if line.startswith("require") and line.endswith("("):
            in_require_block = True
            continue
        if in_require_block and line == ")":
            in_require_block = False
            continue
        if "=>" in line or not (in_require_block or line.startswith("require ")):
            continue
        match = _REQUIRE_LINE.match(line)
        if match and match.group("module") == module:
            return match.group("version")
    raise BinariesError(f"{where}: no 'require {module} <version>' line")


def go_directive(gomod_text: str, where: str) -> str:
    """Pure: the ``go`` directive of a go.mod ("1.26.0")."""
    for raw in gomod_text.splitlines():
        match = re.match(r"^go\s+(\d+(?:\.\d+){0,2})\s*(?://.*)?$", raw.strip())
        if match:
            return match.group(1)
    raise BinariesError(f"{where}: no 'go <version>' directive")


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in match.groups()) if match else ()


def go_too_old(go_version: str, required: str) -> bool:
    """Pure: is the toolchain ``go_version`` ("go1.26.8") older than ``required`` ("1.26.0")?"""
    have = _version_tuple(go_version.removeprefix("go"))
    return not have or have < _version_tuple(required)


def kubernetes_ldflags(version: str) -> str:
    """Pure: the linker flags that stamp the release into /version (as upstream packagers do)."""
    match = re.fullmatch(r"v([1-9]\d*)\.(\d+)\.\d+(?:[-+].*)?", version)
    if match is None:
        raise BinariesError(f"tools/k8sbins/go.mod: {version!r} is not a Kubernetes release")
    major, minor = match.groups()
    stamps = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamps += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
        ]
    stamps.append("-X k8s.io/component-base/version.gitTreeState=clean")
    return " ".join(["-s", "-w", *stamps])


def default_cache_root(env: Mapping[str, str]) -> Path:
    """Pure: ``${XDG_CACHE_HOME:-~/.cache}/vramfit/bin``."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "vramfit" / "bin"


def asset_variable(name: str) -> str:
    """Pure: the envtest per-binary override variable, ``TEST_ASSET_KUBE_APISERVER``."""
    return "TEST_ASSET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def build_recipes(versions: Versions, tools_dir: Path, names: Sequence[str]) -> list[BuildRecipe]:
    """Pure: the ``go build`` invocations that produce ``names`` (one per wrapper module)."""
    recipes = []
    if "etcd" in names:
        recipes.append(BuildRecipe(tools_dir / "etcdbin", {"etcd": ETCD_MODULE}, ldflags="-s -w"))
    kube = {n: f"k8s.io/kubernetes/cmd/{n}" for n in names if n != "etcd"}
    if kube:
        recipes.append(
            BuildRecipe(
                tools_dir / "k8sbins", kube, ldflags=kubernetes_ldflags(versions.kubernetes)
            )
        )
    return recipes


# --- I/O shell ----------------------------------------------------------------------------


def read_versions(tools_dir: Path = TOOLS_DIR) -> Versions:
    """The pinned versions from ``tools/k8sbins/go.mod`` and ``tools/etcdbin/go.mod``."""
    texts = {}
    for module in ("k8sbins", "etcdbin"):
        path = tools_dir / module / "go.mod"
        try:
            texts[module] = (path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise BinariesError(f"cannot read {path}: {exc.strerror or exc}") from None
    k8s_text, k8s_where = texts["k8sbins"]
    etcd_text, etcd_where = texts["etcdbin"]
    go = max(
        go_directive(k8s_text, k8s_where), go_directive(etcd_text, etcd_where), key=_version_tuple
    )
    return Versions(
        kubernetes=module_version(k8s_text, KUBERNETES_MODULE, k8s_where),
        etcd=module_version(etcd_text, ETCD_MODULE, etcd_where),
        go=go,
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def resolve(env: Mapping[str, str], cache_dir: Path) -> Resolution:
    """Look for every binary in the override variables, ``KUBEBUILDER_ASSETS`` and the cache.

    An override that names nothing usable is an error, never silently replaced by a build.
    """
    errors: list[str] = []
    assets_text = env.get("KUBEBUILDER_ASSETS", "")
    assets = Path(assets_text) if assets_text else None
    if assets is not None and not assets.is_dir():
        errors.append(f"KUBEBUILDER_ASSETS={assets_text}: not a directory")
        assets = None
    found: dict[str, Located] = {}
    missing: list[str] = []
    for name in BINARY_NAMES:
        variable = asset_variable(name)
        override = env.get(variable, "")
        if override:
            path = Path(override)
            if _is_executable(path):
                found[name] = Located(name, path.absolute(), "TEST_ASSET")
            else:
                errors.append(f"{variable}={override}: no executable file there")
            continue
        if assets is not None and _is_executable(assets / name):
            found[name] = Located(name, (assets / name).absolute(), "KUBEBUILDER_ASSETS")
        elif _is_executable(cache_dir / name):
            found[name] = Located(name, cache_dir / name, "cache")
        else:
            missing.append(name)
    if errors:
        raise BinariesError("; ".join(errors))
    return Resolution(found=found, missing=tuple(missing), cache_dir=cache_dir)


def require_all(resolution: Resolution) -> BinarySet:
    """The binaries, or an error that names each missing one and how to get it."""
    if resolution.missing:
        raise BinariesError(
            f"missing control-plane binaries: {', '.join(resolution.missing)} "
            f"(looked in TEST_ASSET_<NAME>, KUBEBUILDER_ASSETS and {resolution.cache_dir}); "
            "run `make binaries` (builds them with Go >= "
            f"{MINIMUM_GO}) or set KUBEBUILDER_ASSETS to a folder holding them"
        )
    return BinarySet.from_mapping({n: loc.path for n, loc in resolution.found.items()})


def locate(env: Mapping[str, str] | None = None, tools_dir: Path = TOOLS_DIR) -> BinarySet:
    """The binaries without building anything (what the test fixtures use)."""
    environ = os.environ if env is None else env
    cache_dir = default_cache_root(environ) / read_versions(tools_dir).cache_key
    return require_all(resolve(environ, cache_dir))


def go_toolchain(env: Mapping[str, str], required: str) -> str:
    """The ``go`` executable on ``env``'s PATH, checked to be new enough."""
    go = shutil.which("go", path=env.get("PATH", os.defpath))
    if go is None:
        raise BinariesError(
            f"the Go toolchain (`go`) is not on PATH: install Go >= {MINIMUM_GO} "
            "(https://go.dev/dl/) to build etcd and the Kubernetes binaries, "
            "or set KUBEBUILDER_ASSETS to a folder that already holds them"
        )
    probe = subprocess.run(
        [go, "env", "GOVERSION"],
        capture_output=True,
        text=True,
        env={**env, "GOTOOLCHAIN": "local"},
        check=False,
    )
    version = probe.stdout.strip()
    if probe.returncode != 0 or go_too_old(version, required):
        raise BinariesError(
            f"{go} reports {version or probe.stderr.strip() or 'no version'}; the wrapper "
            f"modules need Go >= {required}: install a newer Go or set KUBEBUILDER_ASSETS"
        )
    return go


@contextlib.contextmanager
def build_lock(cache_dir: Path, out: TextIO) -> Iterator[None]:
    """Hold ``<cache_dir>/.build.lock`` exclusively; waits (and says so) while another holds it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".build.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.write(f"waiting for another build of the binaries ({cache_dir}/.build.lock)\n")
            out.flush()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def go_build_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of every ``go build``: no workspace, no toolchain download, no cgo."""
    return {
        **env,
        "GOWORK": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "CGO_ENABLED": "0",
    }


def _run_streaming(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> int:
    """Run ``command``, copying its output to ``out`` line by line as it comes."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            out.flush()
        return process.wait()


def run_recipe(
    go: str, recipe: BuildRecipe, cache_dir: Path, env: Mapping[str, str], out: TextIO
) -> None:
    """Build one recipe into a temporary folder beside the cache, then rename into place."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        if len(recipe.packages) == 1:
            ((name, package),) = recipe.packages.items()
            target, packages = str(staging / name), [package]
        else:
            target, packages = str(staging) + os.sep, list(recipe.packages.values())
        command = [go, "build", "-trimpath", "-ldflags", recipe.ldflags, "-o", target, *packages]
        out.write(f"building {', '.join(recipe.packages)} in {recipe.module_dir}\n")
        out.flush()
        returncode = _run_streaming(command, recipe.module_dir, go_build_env(env), out)
        if returncode != 0:
            raise BinariesError(
                f"`{' '.join(command)}` in {recipe.module_dir} failed with exit code "
                f"{returncode} (its output is above)"
            )
        for name in recipe.packages:
            built = staging / name
            if not _is_executable(built):
                raise BinariesError(f"go build reported success but produced no {built}")
            os.replace(built, cache_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(cache_dir: Path) -> None:
    """Folders left by a build that was killed; only called while holding the lock."""
    for stale in cache_dir.glob(".build-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def ensure(
    env: Mapping[str, str] | None = None,
    *,
    tools_dir: Path = TOOLS_DIR,
    cache_root: Path | None = None,
    out: TextIO = sys.stderr,
) -> tuple[BinarySet, Resolution]:
    """Find every binary, building the missing ones into the cache; returns them and where from."""
    environ = dict(os.environ if env is None else env)
    versions = read_versions(tools_dir)
    cache_dir = (cache_root or default_cache_root(environ)) / versions.cache_key
    resolution = resolve(environ, cache_dir)
    if not resolution.missing:
        return require_all(resolution), resolution
    go = go_toolchain(environ, versions.go)
    with build_lock(cache_dir, out):
        remove_stale_staging(cache_dir)
        resolution = resolve(environ, cache_dir)  # another process may have built meanwhile
        if resolution.missing:
            started = time.monotonic()
            out.write(
                f"building {', '.join(resolution.missing)} (Kubernetes {versions.kubernetes}, "
                f"etcd {versions.etcd}) into {cache_dir}; the first build takes several minutes\n"
            )
            for recipe in build_recipes(versions, tools_dir, resolution.missing):
                run_recipe(go, recipe, cache_dir, environ, out)
            out.write(f"built in {time.monotonic() - started:.0f} s\n")
            resolution = resolve(environ, cache_dir)
    return require_all(resolution), resolution


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controlplane.binaries",
        description="Find or build etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
        "and kubectl.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="build whatever is missing, then print where each binary is")
    commands.add_parser("versions", help="print the pinned Kubernetes and etcd versions")
    args = parser.parse_args(argv)
    try:
        if args.command == "versions":
            versions = read_versions()
            print(f"kubernetes {versions.kubernetes}\netcd {versions.etcd}\ngo >= {versions.go}")
            return 0
        _, resolution = ensure()
    except BinariesError as exc:
        sys.stderr.write(f"controlplane.binaries: error: {exc}\n")
        return 1
    for name in BINARY_NAMES:
        located = resolution.found[name]
        print(f"{name:15} {located.path}  ({located.source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
