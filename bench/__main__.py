"""Run the benchmarks: every ``bench/bench_<name>.py`` (or only the names given).

Each module exposes ``main(results_dir: Path) -> None`` and writes ``<name>.json`` and
``<name>.md`` under ``bench/results/``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"== bench {name}", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"bench.bench_{name}").main(RESULTS)
        print(f"== bench {name} done in {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
