"""``python -m localgw``: serve a SAM template's HTTP API locally. ``--help`` lists the options."""

from __future__ import annotations

import sys

from localgw.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
