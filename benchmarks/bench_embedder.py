"""Embedder throughput (the ingest hook's work): the runtime's batch settings, same process.

200 SciFact abstracts ("title. abstract") through the exported all-MiniLM-L6-v2
(`onnx_models/minilm-l6-embedder`, `make models`), max_length 256, in interleaved rounds. The
vectors of every setting must agree (cosine > 0.99999) with the first's.

    .venv/bin/python benchmarks/bench_embedder.py [--texts 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from crossrank.models import Embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scorer import interleaved, scifact_pairs

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", type=Path, default=REPO / "onnx_models" / "minilm-l6-embedder")
    args = parser.parse_args()
    texts = [document for _, document in scifact_pairs(args.texts)]
    cores = os.cpu_count() or 1
    settings = {
        "default: 256-token batches side by side, one thread each": {},
        "512-token batches side by side": {"max_batch_tokens": 512},
        "before: 4096-token batches, each on all cores": {
            "intra_op_threads": cores, "parallel_runs": 1, "max_batch_tokens": 4096},
    }
    models = {name: Embedder.load(args.model, **options) for name, options in settings.items()}
    times = interleaved({name: (lambda m=model: m.embed(texts)) for name, model in models.items()},
                        args.rounds)  # after one warm-up call each
    reference = next(iter(models.values())).embed(texts)
    for name, model in models.items():
        assert float((model.embed(texts) * reference).sum(axis=1).min()) > 0.99999, name
    default = min(times[next(iter(times))])
    print(f"{len(texts)} SciFact abstracts, {args.rounds} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| setting | best s | median s | vs default |\n|---|---:|---:|---:|")
    for name, measured in times.items():
        print(f"| {name} | {min(measured):.2f} | {statistics.median(measured):.2f} | "
              f"{min(measured) / default:.2f}x |")


if __name__ == "__main__":
    main()
