"""Run every benchmark module (or those named): ``python -m benchmarks [name ...]``.

Results are printed; ``--write`` also stores them in ``docs/benchmarks.json`` so that
``docs/benchmarks.md`` can quote the numbers of one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
from pathlib import Path

import benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmarks run")
    parser.add_argument("--write", action="store_true", help="store results in docs/benchmarks.json")
    args, rest = parser.parse_known_args(argv)
    found = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in args.names] or found
    unknown = sorted(set(chosen) - set(found))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {found}")
    results: dict[str, object] = {"machine": {"python": platform.python_version(), "cpu": platform.processor()}}
    for name in chosen:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)
        results[name] = module.main([*rest, *(["--quick"] if args.quick else [])])
    if args.write:
        out = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.json"
        previous = json.loads(out.read_text()) if out.exists() else {}
        previous.update(results)
        out.write_text(json.dumps(previous, indent=2, default=str) + "\n")
        print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
