"""Which int8 graph pays on this CPU: every way ONNX Runtime offers to quantise the cross-encoder,
its agreement with fp32 and its speed, and where the time of the shipped one goes.

The same fp32 export as `bench_scorer.py` (the cut last layer, no ORT fusions) is quantised
several ways: dynamic int8 as `int8_on_load` makes it here (crossrank's own `quantize_graph`),
the same without its activation smoothing (models/smoothing.py) or with another strength,
dynamic with full 8-bit weights, static QDQ calibrated on SciFact training pairs (MinMax and
99.99th percentile), dynamic with attention's two products of activations quantised too, with
each layer's Q, K and V products packed into one (one activation quantisation instead of three),
after ORT's MultiHeadAttention fusion, and block-wise 8-bit weights with int8 compute
(MatMulNBits, accuracy level 4; needs `pip install onnx-ir`).

Agreement is measured on two sets: the 100 (claim, relevant abstract) pairs of `bench_scorer.py`
(the issue's measure: one score per claim, all relevant, so the scores are close together), and
reranking-shaped windows: 6 SciFact *training* claims with 20 candidates each (their relevant
abstracts and random others), Spearman within each window, averaged. The settings are compared
on the training windows; the test pairs only report. Calibration uses 8 other training claims.

Also: ORT's own profile of the fp32 and the shipped int8 graph over single pairs on one thread,
split into the weight products (what int8 changes) and everything else, against the GEMM rates
`bench_scorer.py` measures.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_int8_options.py \
        [--source onnx_models/crossrank-minilm-l6-scifact/pytorch] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scorer import _weights_tag, export, gemm_rate, int8_gemm_rate, scifact_pairs
from crossrank.models import CrossEncoder
from crossrank.models.manifest import Quantization
from crossrank.models.parity import spearman, top_k_overlap
from crossrank.models.quantize import int8_settings, machine_summary, quantize_graph
from crossrank.models.sample_texts import pair_sample
from crossrank.models.smoothing import calibrate
from crossrank.models.tokenization import Tokenizer
from crossrank.types import Pair

REPO = Path(__file__).resolve().parents[1]
MAX_LENGTH = 256
# the products with a weight; attention's two products of activations stay fp32 in every graph
WEIGHT_GEMMS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger",
                "QLinearMatMul", "MatMulNBits", "Gemm")
SHIPPED = "dynamic-here"
_SYMMETRIC = {"WeightSymmetric": True, "ActivationSymmetric": False}


def windows(queries: int, candidates: int, seed: int, skip: int = 0) -> list[list[Pair]]:
    """Each training claim's candidates (relevant abstracts plus random others) as one window."""
    sample = pair_sample(queries=queries + skip, candidates=candidates, seed=seed)
    return [[(query, doc) for doc in docs]
            for query, docs in zip(sample.queries[skip:], sample.candidates[skip:], strict=True)]


def encode(model: CrossEncoder, pairs: Sequence[Pair],
           padded: bool = False) -> list[dict[str, np.ndarray]]:
    """One feed per pair, as the scorer batches a 256-token pair (alone); ``padded``: every
    feed padded to MAX_LENGTH (the percentile calibrator stacks its inputs)."""
    feeds = []
    for encoding in model._tokenizer.encode_pairs(list(pairs), MAX_LENGTH):
        length = MAX_LENGTH if padded else len(encoding.ids)
        ids, types, mask = (np.zeros((1, length), np.int64) for _ in range(3))
        ids[0, :len(encoding.ids)] = encoding.ids
        types[0, :len(encoding.ids)] = encoding.type_ids
        mask[0, :len(encoding.ids)] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return feeds


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over prepared feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def contenders(fp32_graph: Path, calibration_feeds: list[dict[str, np.ndarray]],
               config: dict[str, Any]) -> dict[str, tuple[str, Callable[[Path], None]]]:
    """Name -> (directory name, a function writing that int8 graph to its argument);
    ``config`` is the source model's config.json."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    here = int8_settings()  # this CPU's, smoothed where they smooth
    plain = here.model_copy(update={"smooth_alpha": None})
    model = onnx.load(str(fp32_graph))
    tokenizer = Tokenizer(fp32_graph.parent / "tokenizer.json")
    calibration = calibrate(model, tokenizer, [i.name for i in model.graph.input], MAX_LENGTH)

    def dynamic(settings: Quantization, extra: dict[str, Any] | None = None
                ) -> Callable[[Path], None]:
        def make(target: Path) -> None:
            quantize_graph(fp32_graph, target, settings, calibration, extra)
        return make

    def qkv_packed(target: Path) -> None:
        # one activation quantisation and one wider product per layer instead of three
        quantize_graph(pack_qkv(onnx.load(str(fp32_graph))), target, here, calibration)

    def multi_head_attention(target: Path) -> None:
        # ORT's fused attention kernel (fp32) between int8 projections; the fused graph's
        # tensor names are its own, so its maxima are measured on it
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        options = FusionOptions("bert")
        options.use_multi_head_attention = True
        options.enable_embed_layer_norm = False  # the quantiser cannot type it
        fused = optimize_model(str(fp32_graph), model_type="bert",
                               num_heads=config["num_attention_heads"],
                               hidden_size=config["hidden_size"],
                               optimization_options=options, opt_level=0).model
        if not any(entry.domain == "com.microsoft" for entry in fused.opset_import):
            fused.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        fused_calibration = calibrate(fused, tokenizer, [i.name for i in fused.graph.input],
                                      MAX_LENGTH)
        quantize_graph(fused, target, here, fused_calibration)

    def static(method: Any, extra: dict[str, Any]) -> Callable[[Path], None]:
        def make(target: Path) -> None:
            # the quantiser leaves scratch files (sym_shape_infer_temp.onnx, <uuid>.data) in
            # the working directory: give it one of its own
            source, target = fp32_graph.resolve(), target.resolve()
            with tempfile.TemporaryDirectory(prefix="crossrank-static-") as scratch, \
                    contextlib.chdir(scratch):
                quantize_static(str(source), str(target), _Feeds(calibration_feeds),
                                quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                                per_channel=True, reduce_range=bool(here.reduce_range),
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=method, extra_options={**_SYMMETRIC, **extra})
        return make

    def blockwise_8bit(target: Path) -> None:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32_graph)), bits=8, block_size=32,
                                         is_symmetric=True, accuracy_level=4)
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), False)

    bits = "7-bit" if here.reduce_range else "8-bit"
    other_bits = "8-bit" if here.reduce_range else "7-bit"
    shipped = (f"dynamic, this CPU's settings ({bits} weights, smoothing alpha "
               f"{here.smooth_alpha}; what int8_on_load makes)")
    # the other choice of smoothing, and the other weight width, against this CPU's settings
    other_smoothing = (
        (f"dynamic, {bits} weights, not smoothed", ("dynamic-plain", dynamic(plain)))
        if here.smooth_alpha is not None else
        (f"dynamic, {bits} weights, smoothing alpha 0.7", (
            "dynamic-smooth-0.7", dynamic(here.model_copy(update={"smooth_alpha": 0.7})))))
    return {
        shipped: (SHIPPED, dynamic(here)),
        other_smoothing[0]: other_smoothing[1],
        f"dynamic, {other_bits} weights, not smoothed": (
            f"dynamic-{other_bits}", dynamic(plain.model_copy(
                update={"reduce_range": not here.reduce_range}))),
        f"dynamic, {other_bits} weights, smoothing alpha 0.7": (
            f"dynamic-{other_bits}-smooth-0.7", dynamic(plain.model_copy(
                update={"reduce_range": not here.reduce_range, "smooth_alpha": 0.7}))),
        "static QDQ, MinMax calibration": ("static-minmax", static(CalibrationMethod.MinMax, {})),
        "static QDQ, 99.99th percentile calibration": (
            "static-percentile", static(CalibrationMethod.Percentile, {"CalibPercentile": 99.99})),
        f"dynamic, {bits} weights, smoothing alpha 0.5": (
            "dynamic-smooth-0.5", dynamic(here.model_copy(update={"smooth_alpha": 0.5}))),
        "dynamic, this CPU's settings, attention's two products int8 too": (
            "dynamic-attention-int8", dynamic(here, {"MatMulConstBOnly": False})),
        "dynamic, this CPU's settings, each layer's Q, K and V products packed into one": (
            "dynamic-qkv-packed", qkv_packed),
        "dynamic, this CPU's settings, ORT's MultiHeadAttention fusion": (
            "dynamic-multi-head-attention", multi_head_attention),
        "block-wise 8-bit weights, int8 compute (MatMulNBits, block 32)": (
            "blockwise-8bit", blockwise_8bit),
    }


def pack_qkv(model: Any) -> Any:
    """``model`` with each input that feeds three weight products, each followed by a bias
    Add (a layer's query, key and value), computed by one product of the concatenated
    weights, one Add and a Split into the three original outputs."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    readers: dict[str, list[Any]] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    by_input: dict[str, list[Any]] = collections.defaultdict(list)
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            by_input[node.input[0]].append(node)
    replaced: dict[int, list[Any]] = {}
    removed: set[int] = set()
    for source, products in by_input.items():
        adds = [readers[p.output[0]][0] for p in products if len(readers[p.output[0]]) == 1]
        biases = [[b for b in a.input if b in weights] for a in adds if a.op_type == "Add"]
        if len(products) != 3 or len(biases) != 3 or any(len(b) != 1 for b in biases):
            continue
        prefix = f"crossrank/qkv{len(replaced)}"
        parts = [numpy_helper.to_array(weights[p.input[1]]) for p in products]
        graph.initializer.extend([
            numpy_helper.from_array(np.concatenate(parts, axis=1), f"{prefix}/weight"),
            numpy_helper.from_array(np.concatenate(
                [numpy_helper.to_array(weights[b[0]]) for b in biases]), f"{prefix}/bias"),
            numpy_helper.from_array(np.array([w.shape[1] for w in parts], np.int64),
                                    f"{prefix}/split")])
        replaced[id(products[0])] = [
            helper.make_node("MatMul", [source, f"{prefix}/weight"], [f"{prefix}/product"]),
            helper.make_node("Add", [f"{prefix}/product", f"{prefix}/bias"], [f"{prefix}/sum"]),
            helper.make_node("Split", [f"{prefix}/sum", f"{prefix}/split"],
                             [a.output[0] for a in adds], axis=-1)]
        removed.update(id(node) for node in products + adds)
    nodes = [new for node in graph.node
             for new in replaced.get(id(node), []) + ([] if id(node) in removed else [node])]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def op_profile(graph: Path, feeds: list[dict[str, np.ndarray]]) -> collections.Counter[str]:
    """Microseconds per operator type over ``feeds``, one thread, from ORT's profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = 1
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "crossrank-int8-profile")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    for feed in feeds:
        session.run(None, feed)
    path = Path(session.end_profiling())
    totals: collections.Counter[str] = collections.Counter()
    for event in json.loads(path.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    path.unlink()
    return totals


def weight_gemm_us(profile: collections.Counter[str], attention_us: float) -> float:
    """The weight products' time: every product less attention's (``attention_us``, measured
    in the int8 graph, where attention's two products are the only MatMuls left, in fp32)."""
    return sum(profile[op] for op in WEIGHT_GEMMS) + profile["MatMul"] - attention_us


def agreement(reference: CrossEncoder, model: CrossEncoder, test_pairs: list[Pair],
              train_windows: list[list[Pair]]) -> dict[str, float]:
    expected = reference.raw_scores(test_pairs, max_length=MAX_LENGTH)
    got = model.raw_scores(test_pairs, max_length=MAX_LENGTH)
    per_window = [spearman(reference.raw_scores(w, max_length=MAX_LENGTH),
                           model.raw_scores(w, max_length=MAX_LENGTH)) for w in train_windows]
    return {"test": spearman(expected, got), "top10": top_k_overlap(expected, got, 10),
            "windows": float(np.mean(per_window)), "windows_min": float(np.min(per_window))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path,
                        default=REPO / "onnx_models" / "crossrank-minilm-l6-scifact" / "pytorch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=REPO / ".crossrank" / "bench_scorer")
    args = parser.parse_args()
    print(machine_summary(), flush=True)  # speed claims hold for this CPU kind only

    import onnxruntime as ort

    tag = f"{args.source.name}-{_weights_tag(args.source)}"
    fp32_dir = export(args.source, args.work_dir / tag / "onnx-fp32")
    fp32_graph = fp32_dir / "model.onnx"
    fp32 = CrossEncoder.load(fp32_dir)
    test_pairs = scifact_pairs(100)
    train_windows = windows(6, 20, seed=1)
    calibration = encode(fp32, [p for w in windows(8, 8, seed=7, skip=8) for p in w],
                         padded=True)

    # one directory per graph, made once per fp32 export, onnxruntime version and ISA
    work = args.work_dir / tag / "int8-options" / ort.__version__ / int8_settings().isa
    models: dict[str, CrossEncoder] = {}
    skipped: dict[str, str] = {}
    for name, (slug, make) in contenders(
            fp32_graph, calibration, json.loads((args.source / "config.json").read_text())).items():
        directory = work / slug
        if not (directory / "model.onnx").is_file():
            shutil.copytree(fp32_dir, directory, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("model.onnx"))
            try:
                make(directory / "staged.onnx")
            except ImportError as exc:
                skipped[name] = f"{exc.name or exc} not installed"
                continue
            # renamed when whole: an interrupted run leaves no graph to mistake for this one
            (directory / "staged.onnx").replace(directory / "model.onnx")
        # the manifest is fp32's: the replaced graph runs as it is, unverified
        models[name] = CrossEncoder.load(directory, verify_checksums=False)
        print(f"ready: {name}", flush=True)

    scores = {name: agreement(fp32, model, test_pairs, train_windows)
              for name, model in models.items()}
    times: dict[str, list[float]] = {"fp32": [], **{name: [] for name in models}}
    timed = {"fp32": fp32, **models}
    for model in timed.values():
        model.raw_scores(test_pairs[:4], max_length=MAX_LENGTH)  # warm-up
    for _ in range(args.rounds):
        for name, model in timed.items():
            start = time.perf_counter()
            model.raw_scores(test_pairs, max_length=MAX_LENGTH)
            times[name].append(time.perf_counter() - start)
    fp32_best = min(times["fp32"])

    lines = [
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python "
        f"benchmarks/bench_int8_options.py --source {args.source} --rounds {args.rounds}`",
        "",
        f"Machine: {machine_summary()}; onnxruntime {ort.__version__}. Model `{args.source}`.",
        "",
        f"Speed: the 100 test pairs at {MAX_LENGTH} tokens through `CrossEncoder` (one pair per "
        f"batch, one run per core), best of {args.rounds} interleaved rounds. Agreement with "
        "fp32: Spearman over those 100 pairs (the issue's measure) and within each of 6 "
        "reranking windows of training claims (20 candidates each; mean and worst).",
        "",
        "| int8 graph | best s | vs fp32 | Spearman, 100 test pairs | top-10 | "
        "Spearman within windows (mean / worst) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| fp32 (reference) | {fp32_best:.2f} | 1.00x | 1.0000 | 1.00 | 1.0000 / 1.0000 |",
    ]
    for name in models:
        s = scores[name]
        lines.append(f"| {name} | {min(times[name]):.2f} | {fp32_best / min(times[name]):.2f}x "
                     f"| {s['test']:.4f} | {s['top10']:.2f} | {s['windows']:.4f} / "
                     f"{s['windows_min']:.4f} |")
    lines += [f"| {name} | skipped: {why} | | | | |" for name, why in skipped.items()]

    profile_feeds = encode(fp32, [p for w in train_windows[:2] for p in w])
    fp32_profile = op_profile(fp32_graph, profile_feeds)
    int8_graph = work / SHIPPED / "model.onnx"
    int8_profile = op_profile(int8_graph, profile_feeds)
    # in the int8 graph the only MatMuls left are attention's two products of activations
    attention_us = int8_profile["MatMul"]
    fp32_gemm = weight_gemm_us(fp32_profile, attention_us)
    int8_gemm = weight_gemm_us(int8_profile, attention_us)
    fp32_total, int8_total = sum(fp32_profile.values()), sum(int8_profile.values())
    rate, rate_int8 = gemm_rate(), int8_gemm_rate()
    ratio = rate_int8 / rate
    ideal = fp32_total / (fp32_total - fp32_gemm + fp32_gemm / ratio)
    lines += [
        "",
        f"ORT's profile, {len(profile_feeds)} training pairs one at a time on one thread "
        "(the int8 graph of the first row):",
        "",
        "| graph | total ms | weight products ms | attention products ms | everything else ms |",
        "|---|---:|---:|---:|---:|",
        f"| fp32 | {fp32_total / 1e3:.0f} | {fp32_gemm / 1e3:.0f} | {attention_us / 1e3:.0f} "
        f"(int8's, which stay fp32) | {(fp32_total - fp32_gemm - attention_us) / 1e3:.0f} |",
        f"| int8 | {int8_total / 1e3:.0f} | {int8_gemm / 1e3:.0f} | {attention_us / 1e3:.0f} | "
        f"{(int8_total - int8_gemm - attention_us) / 1e3:.0f} |",
        "",
        f"- GEMM rates: numpy fp32 {rate:.0f} GFLOP/s, ORT MatMulInteger {rate_int8:.0f} GOP/s: "
        f"{ratio:.2f}x.",
        f"- The weight products alone: int8 {fp32_gemm / int8_gemm:.2f}x fp32, "
        f"{fp32_gemm / int8_gemm / ratio:.0%} of the rate ratio.",
        f"- The whole graph: int8 {fp32_total / int8_total:.2f}x fp32, "
        f"{fp32_total / int8_total / ratio:.0%} of the rate ratio. If the weight products ran "
        f"at exactly the rate ratio and nothing else changed, the graph would be {ideal:.2f}x "
        f"({ideal / ratio:.0%} of the ratio): the operators int8 does not touch bound it.",
        "- Largest operators, int8: " + ", ".join(
            f"{op} {us / int8_total:.0%}" for op, us in int8_profile.most_common(8)),
    ]
    print("\n".join(lines))
    print(f"(median fp32 {statistics.median(times['fp32']):.2f} s)")


if __name__ == "__main__":
    main()
