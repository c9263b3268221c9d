"""Benchmarks run by ``nox -s bench``; each ``bench_*.py`` module has ``main(argv) -> dict``."""
