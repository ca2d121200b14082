"""How query-text extraction and query-string stripping scale with the input.

Planning runs on the event loop, and the query text comes straight from the client, so both
must be linear in the input. For each adversarial pattern this times inputs of N and 4N
characters (and 25,000 vs 100,000 clauses for extraction) and prints the ratio: about 4 for
linear work, 16 for quadratic. Run: ``.venv/bin/python benchmarks/bench_query_text.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from crossrank.models.quantize import machine_summary
from crossrank.search.query_text import (
    extract_query_text,
    strip_query_string,
    strip_simple_query_string,
)

PATTERNS = ["[TO ", "[ TO", "{TO ", "a:", "-a", "a:>", "!a:", "NOT ", "a:/", "_exists_:", "\\",
            '-"', "-(", "a:[", "(", "TO "]


def seconds(work: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    print(machine_summary())
    print(f"{'input':<14} {'N s':>9} {'4N s':>9} {'ratio':>6}")
    for unit in PATTERNS:
        small, large = unit * (10_000 // len(unit)), unit * (40_000 // len(unit))

        def strip(text: str) -> None:
            strip_query_string(text)
            strip_simple_query_string(text)

        a, b = seconds(lambda s=small: strip(s)), seconds(lambda t=large: strip(t))
        print(f"{unit!r:<14} {a:9.4f} {b:9.4f} {b / a:6.1f}")
    few = {"bool": {"should": [{"match": {"t": f"w{i}"}} for i in range(25_000)]}}
    many = {"bool": {"should": [{"match": {"t": f"w{i}"}} for i in range(100_000)]}}
    a, b = seconds(lambda: extract_query_text(few)), seconds(lambda: extract_query_text(many))
    print(f"{'clauses':<14} {a:9.4f} {b:9.4f} {b / a:6.1f}")


if __name__ == "__main__":
    main()
