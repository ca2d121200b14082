"""What chunking costs: the default model scoring SciFact windows with long documents read in
windows (``Chunking(max_chunks=N)``) against cut to the model's length, in one run.

Two document sets, each 50 (claim, document) pairs: SciFact abstracts as they are ("title.
abstract", mostly longer than the model's 128 tokens), and long documents of four abstracts
each. Times are the median of ``--rounds`` over the same pairs; the ratio is against chunking
off in the same run.

    .venv/bin/python benchmarks/bench_chunking.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from crossrank.models import CrossEncoder
from crossrank.models.quantize import machine_summary
from crossrank.models.sample_texts import pair_sample
from crossrank.models.tokenization import Chunking

MODEL = Path(__file__).resolve().parents[1] / "onnx_models" / "crossrank-minilm-l6-scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine_summary(), flush=True)  # speed claims hold for this CPU kind only
    model = CrossEncoder.load(MODEL)
    sample = pair_sample(queries=1, candidates=200, seed=3)
    query, docs = sample.queries[0], sample.candidates[0]
    sets = {"SciFact abstracts": [(query, d) for d in docs[:50]],
            "4 abstracts each": [(query, " ".join(docs[i:i + 4])) for i in range(0, 200, 4)]}
    print(f"default model, max_length {model.manifest.max_length}, 50 pairs per set, median "
          f"of {args.rounds} rounds")
    print("| documents | chunking | windows | ms | x off |")
    print("|---|---|---:|---:|---:|")
    tokenizer = model._tokenizer
    for name, pairs in sets.items():
        base = None
        for chunks in (1, 4, 16):
            chunking = Chunking(max_chunks=chunks) if chunks > 1 else None
            windows = sum(len(w) for w in tokenizer.encode_pair_windows(
                pairs, model.manifest.max_length, chunking or Chunking()))
            model.score(pairs, chunking=chunking)  # warm
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                model.score(pairs, chunking=chunking)
                times.append(time.perf_counter() - start)
            ms = statistics.median(times) * 1000
            base = base or ms
            label = "off" if chunks == 1 else f"max_chunks {chunks}"
            print(f"| {name} | {label} | {windows} | {ms:.1f} | {ms / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
