"""Build hook: generate the kubelet pod-resources gRPC stubs before the package is built.

``nodeagent/podresources/api.proto`` is the source; ``api_pb2.py`` and ``api_pb2_grpc.py`` are
written next to it by ``grpc_tools.protoc`` (a build requirement) on every build, editable
installs included, so generated code is never committed and always matches the proto.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO = Path("nodeagent/podresources/api.proto")


def generate_stubs() -> None:
    """Run protoc on the pod-resources proto; fail the build loudly if it fails."""
    import grpc_tools  # noqa: PLC0415 - a build requirement, not a runtime one
    from grpc_tools import protoc  # noqa: PLC0415

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")


class BuildPyWithStubs(build_py):
    """``build_py`` that generates the gRPC stubs first (also runs for editable installs)."""

    def run(self) -> None:
        generate_stubs()
        super().run()


setup(cmdclass={"build_py": BuildPyWithStubs})
