"""The authorizer's two costs, each against a baseline measured in the same run.

1. Warm verification: ``authorizer.handler`` on an HTTP API event with a valid token, against a
   bare ``jwt.decode`` of the same token with the same key (RS256, ES256, HS256). Rounds of the
   two alternate, and the ratio is the median of the per-round ratios. Goal: at most 1.3x.
2. Import time: ``import authorizer`` in fresh interpreters (median of several), against the sum
   of the median import times of the modules its code imports at module level (found by reading
   the source, so the list follows the code). Goal: at most 1.3x. Also reports whether boto3 or
   the X-Ray SDK was imported.

Run: ``.venv/bin/python -m bench.authorizer``.
"""

from __future__ import annotations

import ast
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
FUNCTION = ROOT / "functions" / "authorizer"
GOAL = 1.3
ROUNDS = 15
CALLS_PER_ROUND = 300
IMPORT_RUNS = 11


def _timed(call: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count


def _compare(
    handler_call: Callable[[], Any], baseline_call: Callable[[], Any]
) -> tuple[float, ...]:
    """Median per-call seconds of each, and the median of the per-round ratios."""
    for _ in range(50):
        handler_call()
        baseline_call()
    handler_times, baseline_times, ratios = [], [], []
    for _ in range(ROUNDS):
        baseline = _timed(baseline_call, CALLS_PER_ROUND)
        handler = _timed(handler_call, CALLS_PER_ROUND)
        handler_times.append(handler)
        baseline_times.append(baseline)
        ratios.append(handler / baseline)
    return (
        statistics.median(handler_times),
        statistics.median(baseline_times),
        statistics.median(ratios),
    )


def warm_verification() -> list[float]:
    """Print per-algorithm figures; return the ratios."""
    import authorizer
    import jwt

    from tests.conftest import load_event
    from tests.support.jwt_keys import (
        AUDIENCE,
        HS_SECRET,
        ISSUER,
        JwksServer,
        authorizer_environment,
        ec_key,
        make_token,
        rsa_key,
    )

    keys = {"RS256": rsa_key("bench-rsa"), "ES256": ec_key("bench-ec")}
    ratios = []
    with JwksServer(keys.values()) as server:
        for alg in ("RS256", "ES256", "HS256"):
            if alg == "HS256":
                os.environ.update(authorizer_environment())
                token, key = make_token(HS_SECRET), HS_SECRET.encode()
            else:
                os.environ.update(authorizer_environment(server.url, JWT_ALGORITHMS=alg))
                token, key = make_token(keys[alg]), keys[alg].private.public_key()
            authorizer._authenticator = None
            event = load_event("authorizer-http")
            event["headers"]["authorization"] = f"Bearer {token}"
            assert authorizer.handler(event, None)["isAuthorized"] is True

            def bare(token: str = token, key: Any = key, alg: str = alg) -> Any:
                return jwt.decode(token, key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)

            def through_handler(event: dict[str, Any] = event) -> Any:
                return authorizer.handler(event, None)

            handler_s, bare_s, ratio = _compare(through_handler, bare)
            ratios.append(ratio)
            print(
                f"warm {alg}: handler {handler_s * 1e6:7.1f} us/call, "
                f"bare jwt.decode {bare_s * 1e6:7.1f} us/call, ratio {ratio:.2f}x "
                f"(goal <= {GOAL}x) {'OK' if ratio <= GOAL else 'OVER'}"
            )
    return ratios


def _module_level_imports(paths: list[Path]) -> list[str]:
    """Modules imported at module level by these files, ours (gateway.*) left out."""
    found: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    # A third-party package is imported whole by any of its submodules (jwt.exceptions runs
    # jwt/__init__, which loads jwt.algorithms): count it once, by its top-level name.
    modules = set()
    for name in found:
        top = name.split(".")[0]
        if top in {"__future__", "gateway"}:
            continue
        modules.add(name if top in sys.stdlib_module_names else top)
    return sorted(modules)


def _import_once(module: str) -> tuple[float, list[str]]:
    """Seconds to import ``module`` in a fresh interpreter, and the heavy modules it loaded."""
    code = (
        "import sys, time, json\n"
        "started = time.perf_counter()\n"
        f"import {module}\n"
        "elapsed = time.perf_counter() - started\n"
        "heavy = [m for m in ('boto3', 'botocore.session', 'aws_xray_sdk') if m in sys.modules]\n"
        "print(json.dumps([elapsed, heavy]))\n"
    )
    environment = {
        "PYTHONPATH": f"{LAYER}{os.pathsep}{FUNCTION}",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "POWERTOOLS_SERVICE_NAME": "authorizer",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    elapsed, heavy = json.loads(result.stdout)
    return float(elapsed), list(heavy)


def _import_samples(targets: list[str]) -> dict[str, list[float]]:
    """Import times of each target, one per round; the rounds interleave the targets so that a
    busy second on the machine falls on all of them rather than on whichever ran then."""
    samples: dict[str, list[float]] = {target: [] for target in targets}
    for _ in range(IMPORT_RUNS):
        for target in targets:
            samples[target].append(_import_once(target)[0])
    return samples


def import_time() -> float:
    """Print the handler's import time against its dependencies'; return the ratio."""
    sources = [
        FUNCTION / "authorizer.py",
        LAYER / "gateway" / "config.py",
        LAYER / "gateway" / "observability.py",
        *sorted((LAYER / "gateway" / "tokens").glob("*.py")),
    ]
    dependencies = _module_level_imports(sources)
    together = ", ".join(dependencies)
    samples = _import_samples(["authorizer", together, *dependencies])
    handler_runs, together_runs = samples["authorizer"], samples[together]
    sum_runs = [sum(samples[name][run] for name in dependencies) for run in range(IMPORT_RUNS)]
    ratio = statistics.median(h / d for h, d in zip(handler_runs, sum_runs, strict=True))
    strict = statistics.median(h / t for h, t in zip(handler_runs, together_runs, strict=True))
    heavy = _import_once("authorizer")[1]

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1e3:.1f} ms"

    listed = ", ".join(f"{name} {ms(samples[name])}" for name in dependencies)
    print(f"dependencies (median of {IMPORT_RUNS} fresh interpreters each): {listed}")
    print(
        f"import authorizer: {ms(handler_runs)}; sum of dependencies {ms(sum_runs)}; "
        f"ratio {ratio:.2f}x (goal <= {GOAL}x) {'OK' if ratio <= GOAL else 'OVER'}"
    )
    # The sum counts shared modules (logging, re, ...) once per dependency that loads them; the
    # stricter baseline imports them all in one interpreter, leaving only our own code's cost.
    print(f"stricter: all dependencies in one interpreter {ms(together_runs)}; ratio {strict:.2f}x")
    print(f"heavy modules loaded by the import: {heavy or 'none'} (boto3, botocore.session, X-Ray)")
    return ratio


def main() -> None:
    ratios = warm_verification()
    import_ratio = import_time()
    print(
        "ratios: warm RS256 {:.2f}x, ES256 {:.2f}x, HS256 {:.2f}x; import {:.2f}x".format(
            *ratios, import_ratio
        )
    )


if __name__ == "__main__":
    main()
