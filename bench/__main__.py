"""Run every benchmark module (``python -m bench [part ...]``) and report which ones failed."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default: all ``bench_*`` modules) one after another."""
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        wanted = {f"bench_{a.removeprefix('bench_')}" for a in argv}
        unknown = wanted - set(names)
        if unknown:
            sys.stderr.write(f"unknown benchmark(s): {sorted(unknown)}; known: {names}\n")
            return 2
        names = [n for n in names if n in wanted]
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        rc = int(module.main())
        print(f"== {name}: rc={rc} in {time.perf_counter() - start:.1f}s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        sys.stderr.write(f"failed benchmarks: {failed}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
