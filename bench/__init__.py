"""Benchmarks. Each module measures the gateway against a baseline taken in the same run and prints
ratios, since this machine is noisy and absolute times mean little. ``python -m bench`` runs all.

Importing this package puts the layer and every function's code folder on ``sys.path``, as the
test configuration does, so ``python -m bench.<name>`` works from the project root.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _folder in (
    ROOT / "layers" / "common",
    *sorted((ROOT / "functions").iterdir()),
    ROOT,
):
    if _folder.is_dir() and str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
