"""Run every benchmark module in ``bench/`` (or the ones named on the command line), one by one.

Each runs in a fresh interpreter of its own: a benchmark leaves warm clients, threads and child
processes behind, which would skew the next one's figures (or point it at a server that is gone).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    names = argv or sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if not info.name.startswith("_")
    )
    failed = []
    for name in names:
        print(f"\n=== bench.{name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"], cwd=here.parent)
        if code != 0:
            failed.append(name)
            print(f"bench.{name} failed with exit code {code}", flush=True)
        print(f"=== bench.{name} took {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
