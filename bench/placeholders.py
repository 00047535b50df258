"""Benchmarks the issues ask for whose subjects are not built yet: listed, never faked.

Each becomes a module of its own (bench/bench_<name>.py with `run(quick) -> list[Row]`) when
its issue lands; until then the suite shows it as "not built yet", with no figure.
"""

from __future__ import annotations

from bench.common import Row, not_built

PENDING: dict[str, str] = {}  # every benchmark the issues ask for is built


def rows(name: str) -> list[Row]:
    return [not_built(name, PENDING[name])]
