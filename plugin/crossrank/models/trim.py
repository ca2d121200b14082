"""Cut a cross-encoder's last layer down to the one row its head reads (export side: needs onnx).

A sequence classifier reads only the first token's vector after the last encoder layer (BERT's
pooler, ELECTRA's and RoBERTa's heads all take ``hidden[:, 0]``). In that last layer the other
rows' queries, attention outputs and feed-forward blocks are computed and thrown away: for
MiniLM-L6 at 256 tokens that is 14% of the model's FLOPs. The layer still needs every row's keys
and values, so only the query projection, the residual input and the shapes taken from them are
cut to row 0; everything after them then runs on one row.

The rewrite works on the names the PyTorch exporter gives nodes (``.../layer.N/attention/self/
query/...``), in an fp32 graph or a dynamically quantised one. It never guesses: a graph that
does not look as expected is left alone, and :func:`largest_difference` lets the caller check
the result against the untouched graph before keeping it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crossrank.models.cross_encoder import CrossEncoder
from crossrank.models.errors import ManifestError
from crossrank.models.manifest import Manifest, sha256_file
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.parity import Agreement, agreement
from crossrank.models.sample_texts import pair_sample
from crossrank.models.token_batches import Batch
from crossrank.models.tokenization import Tokenizer

# fp32: the cut graph must give the full graph's logits (only summation order differs)
TRIM_TOLERANCE = 1e-4
# int8: the cut rows change the last layer's activation scales, so scores move a little;
# Spearman against the full graph, mean over the sample queries and worst query
MIN_INT8_SPEARMAN = 0.99
MIN_INT8_SPEARMAN_ANY_QUERY = 0.98

_QUERY = re.compile(r"^(?P<prefix>.*/layer\.(?P<index>\d+)/)attention/self/query/")
_PROJECTIONS = ("MatMul", "MatMulInteger")


def trim_last_layer(model: Any) -> bool:
    """Rewire ``model`` (an ``onnx.ModelProto``, changed in place) so that its last encoder
    layer computes only row 0 after its key and value projections. False, and ``model``
    untouched, when the graph does not have the expected shape."""
    import onnx

    graph = model.graph
    layers: dict[int, str] = {}
    for node in graph.node:
        match = _QUERY.match(node.name)
        if match:
            layers[int(match["index"])] = match["prefix"]
    if not layers:
        return False
    prefix = layers[max(layers)]
    query = [node for node in graph.node if node.op_type in _PROJECTIONS
             and node.name.startswith(f"{prefix}attention/self/query/")]
    if len(query) != 1:
        return False
    producers = {output: node for node in graph.node for output in node.output}
    layer_input = query[0].input[0]
    full_rows = [layer_input]
    if query[0].op_type == "MatMulInteger":  # the input quantised once for Q, K and V
        quantize = producers.get(layer_input)
        if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
            return False
        full_rows.insert(0, quantize.input[0])
        smoothing = producers.get(quantize.input[0])  # models/smoothing.py's Mul before it
        if (smoothing is not None and smoothing.op_type == "Mul"
                and smoothing.name.startswith("crossrank/smooth")):
            full_rows.insert(0, smoothing.input[0])
    keys_values = (f"{prefix}attention/self/key/", f"{prefix}attention/self/value/")
    consumers = [node for node in graph.node
                 if node.name.startswith(prefix) and not node.name.startswith(keys_values)
                 and any(name in full_rows for name in node.input)]
    if not any(node.op_type.startswith("Add") for node in consumers):
        return False  # no residual read of the layer input: not the layout this expects
    # the additive attention mask, made outside the layer: (batch, 1, 1 or queries, keys)
    initializers = {tensor.name for tensor in graph.initializer}
    inside = {output for node in graph.node if node.name.startswith(prefix)
              for output in node.output}
    score_adds = [node for node in graph.node if node.op_type == "Add"
                  and node.name.startswith(f"{prefix}attention/self/")
                  and not node.name.startswith((f"{prefix}attention/self/query/", *keys_values))]
    masks = {name for node in score_adds for name in node.input
             if name not in inside and name not in initializers}
    if len(score_adds) != 1 or len(masks) != 1:
        return False

    bounds = f"{prefix}crossrank_first_row"
    graph.initializer.extend([
        onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), f"{bounds}/starts"),
        onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), f"{bounds}/ends"),
        onnx.numpy_helper.from_array(np.array([1], dtype=np.int64), f"{bounds}/axis_rows"),
        onnx.numpy_helper.from_array(np.array([2], dtype=np.int64), f"{bounds}/axis_queries"),
    ])
    # rows of the layer input: axis 1; the mask's query axis: axis 2 (a no-op when it is 1)
    read = {name for node in consumers for name in node.input}
    cuts = ({name: "axis_rows" for name in full_rows if name in read}
            | {name: "axis_queries" for name in masks})
    sliced = {name: f"{name}/crossrank_first_row" for name in cuts}
    for node in [*consumers, *score_adds]:
        for position, name in enumerate(node.input):
            if name in sliced:
                node.input[position] = sliced[name]
    # each Slice goes right after the node that makes its input (graph order is topological)
    for name, axis in cuts.items():
        slice_node = onnx.helper.make_node(
            "Slice", [name, f"{bounds}/starts", f"{bounds}/ends", f"{bounds}/{axis}"],
            [sliced[name]], name=f"{sliced[name]}/Slice")
        producer = producers.get(name)
        position = 0 if producer is None else list(graph.node).index(producer) + 1
        graph.node.insert(position, slice_node)
    return True


def largest_difference(before: OnnxSession, after: OnnxSession, output: str,
                       batches: Sequence[Batch]) -> float:
    """The largest absolute difference between two graphs' outputs over ``batches``
    (infinite when ``after`` cannot run them)."""
    worst = 0.0
    for batch in batches:
        a: npt.NDArray[np.float32] = before.run(batch, output)
        try:
            b: npt.NDArray[np.float32] = after.run(batch, output)
        except Exception:  # onnxruntime's own exception types are not exported stably
            return float("inf")
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float(np.abs(a - b).max()))
    return worst


def trim_model_dir(directory: Path) -> Agreement:
    """Cut the last layer of an already exported cross-encoder in ``directory``, in place.

    Kept only when the cut graph agrees with the full one on sample pairs: raw scores within
    ``TRIM_TOLERANCE`` for fp32; for int8 (whose last-layer activation scales now come from one
    row) a mean Spearman of at least ``MIN_INT8_SPEARMAN`` and no query below
    ``MIN_INT8_SPEARMAN_ANY_QUERY``. Raises ``ManifestError`` otherwise (also without the
    export extra's onnx), leaving the directory as it was. The manifest's parity record stays
    the export's, labelled as measured before the cut, with the cut's own agreement.
    """
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data
    except ImportError as exc:
        raise ManifestError("crossrank trim needs the export extra: "
                            "pip install 'crossrank[export]'") from exc

    manifest = Manifest.read(directory)
    manifest.verify(directory)
    if manifest.kind != "cross-encoder":
        raise ManifestError(f"{directory}: a {manifest.kind}, not a cross-encoder; only a "
                            "classifier head reads one row")
    if manifest.last_layer_rows == "first":
        raise ManifestError(f"{directory}: the last layer is already cut to the head's row")
    graph = directory / manifest.model_file
    try:
        model = onnx.load(str(graph), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise ManifestError(f"{graph}: onnx cannot read the graph: {exc}") from exc
    if any(uses_external_data(tensor) for tensor in model.graph.initializer):
        raise ManifestError(f"{graph}: weights in an external data file are not supported")
    if not trim_last_layer(model):
        raise ManifestError(f"{graph}: no .../layer.N/attention/self/query/ projection feeding "
                            "a residual: not a layout crossrank can cut")
    staged = directory / f".{manifest.model_file}.trimmed"
    onnx.save_model(model, str(staged))
    try:
        try:
            full = CrossEncoder.load(directory)
            cut = CrossEncoder(manifest, OnnxSession(staged),
                               Tokenizer(directory / manifest.tokenizer_file))
            report = agreement(pair_sample(), full.raw_scores, cut.raw_scores)
        except Exception as exc:  # onnxruntime's own exception types are not exported stably
            raise ManifestError(f"{graph}: the cut graph does not run ({exc}); left as it "
                                "was") from exc
        int8 = manifest.quantization is not None
        if (report.spearman < MIN_INT8_SPEARMAN
                or report.min_spearman < MIN_INT8_SPEARMAN_ANY_QUERY) if int8 else (
                report.max_abs_diff > TRIM_TOLERANCE):
            raise ManifestError(f"{graph}: the cut graph disagrees with the full one ({report}); "
                                "left as it was")
        os.replace(staged, graph)
    finally:
        staged.unlink(missing_ok=True)
    # the graph is in place: a crash before the next line leaves a checksum mismatch, which
    # Manifest.verify reports (and `crossrank trim` cannot repair: re-export)
    checksums = {**manifest.checksums, manifest.model_file: sha256_file(graph)}
    update: dict[str, Any] = {"last_layer_rows": "first", "checksums": checksums}
    if manifest.parity is not None:  # measured on the full graph: say so, and how far off
        update["parity"] = manifest.parity.model_copy(update={"reference": (
            f"{manifest.parity.reference}; measured on the graph before `crossrank trim` cut "
            f"its last layer (cut vs full on {report.pairs} pairs: max |diff| "
            f"{report.max_abs_diff:.3g}, Spearman {report.spearman:.4f}, top-10 overlap "
            f"{report.top10_overlap:.2f})")})
    manifest.model_copy(update=update).write(directory)
    return report
