"""int8 made for the local CPU at first load (``int8_on_load``): the shipped float graph with
fp16-stored weights, quantised once per instruction set into a cache, ranking like fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank.models import CrossEncoder, Manifest
from crossrank.models.errors import ExportError
from crossrank.models.local_int8 import local_int8_graph, local_settings
from crossrank.models.onnx_session import OnnxSession
from crossrank.models.parity import spearman, top_k_overlap
from crossrank.models.quantize import ISAS, cpu_isa, exact_here, int8_settings


@pytest.fixture(scope="module")
def on_load_dir(model_factory: Any) -> Path:
    return model_factory.exported("bert-64", quantize="int8", int8_on_load=True)


def test_export_ships_the_float_graph_at_half_size(on_load_dir: Path, model_factory: Any,
                                                   sample_pairs: list[list[tuple[str, str]]]
                                                   ) -> None:
    manifest = Manifest.read(on_load_dir)
    assert manifest.int8_on_load is not None and manifest.quantization is None
    fp32_dir = model_factory.exported("bert-64")
    size = (on_load_dir / "model.onnx").stat().st_size
    assert size < 0.6 * (fp32_dir / "model.onnx").stat().st_size
    # the shipped file runs as it is (Casts to fp32 folded at load): fp32 up to fp16 rounding
    fp32 = CrossEncoder.load(fp32_dir)
    stored = CrossEncoder(manifest, OnnxSession(on_load_dir / "model.onnx"),
                          fp32._tokenizer)
    pairs = sample_pairs[0]
    assert np.max(np.abs(fp32.raw_scores(pairs) - stored.raw_scores(pairs))) < 2e-2


def test_first_load_quantises_for_this_cpu_then_reuses_the_cache(
        on_load_dir: Path, model_factory: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, sample_pairs: list[list[tuple[str, str]]]) -> None:
    monkeypatch.setenv("CROSSRANK_CACHE_DIR", str(tmp_path))
    model = CrossEncoder.load(on_load_dir)
    assert model.quantization == int8_settings(cpu_isa())
    (cached,) = (tmp_path / "int8").glob("*.onnx")
    assert f"-{cpu_isa()}-" in cached.name
    made = cached.stat().st_mtime_ns
    again = CrossEncoder.load(on_load_dir)
    assert [p.name for p in (tmp_path / "int8").iterdir()] == [cached.name]
    assert cached.stat().st_mtime_ns == made  # opened, not made again
    fp32 = CrossEncoder.load(model_factory.exported("bert-64"))
    for pairs in sample_pairs:
        reference, got = fp32.score(pairs), again.score(pairs)
        np.testing.assert_array_equal(got, model.score(pairs))
        assert spearman(reference, got) > 0.9  # a tiny random model: see the int8 parity test
        assert top_k_overlap(reference, got, 10) >= 0.7


@pytest.mark.parametrize("isa", ISAS)
def test_every_isas_graph_runs_here_and_ranks_like_fp32(
        isa: str, on_load_dir: Path, model_factory: Any, tmp_path: Path,
        sample_pairs: list[list[tuple[str, str]]]) -> None:
    """Each instruction set's settings, made and run on this machine (ONNX Runtime runs any
    of them on any x86 CPU), so every path is covered wherever the suite runs."""
    manifest = Manifest.read(on_load_dir)
    graph, settings = local_int8_graph(on_load_dir, manifest, isa=isa, cache=tmp_path)
    assert settings == local_settings(manifest, isa) and settings.isa == isa
    fp32 = CrossEncoder.load(model_factory.exported("bert-64"))
    int8 = CrossEncoder(manifest, OnnxSession(graph), fp32._tokenizer)
    pairs = sample_pairs[0]
    scores = int8.score(pairs)
    assert np.isfinite(scores).all() and len(scores) == len(pairs)
    if exact_here(settings):
        assert spearman(fp32.score(pairs), scores) > 0.9


def test_a_damaged_cache_entry_is_an_error_naming_it(on_load_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.models.errors import ManifestError

    monkeypatch.setenv("CROSSRANK_CACHE_DIR", str(tmp_path))
    CrossEncoder.load(on_load_dir)
    (cached,) = (tmp_path / "int8").glob("*.onnx")
    cached.write_bytes(b"not a graph")
    with pytest.raises(ManifestError, match="cannot load"):
        CrossEncoder.load(on_load_dir)


def test_int8_on_load_needs_quantize_and_no_isa(model_factory: Any, tmp_path: Path) -> None:
    from crossrank.models import export_model

    with pytest.raises(ExportError, match="need quantize int8"):
        export_model(model_factory.source("bert-64"), tmp_path / "a", int8_on_load=True)
    with pytest.raises(ExportError, match="takes no int8_isa"):
        export_model(model_factory.source("bert-64"), tmp_path / "b", quantize="int8",
                     int8_on_load=True, int8_isa="avx2")


def test_manifest_refuses_int8_on_load_over_an_int8_graph(on_load_dir: Path) -> None:
    data = Manifest.read(on_load_dir).model_dump()
    data["quantization"] = int8_settings("avx2").model_dump()
    with pytest.raises(ValueError, match="int8_on_load needs a float graph"):
        Manifest.model_validate(data)


def test_export_ships_calibration_maxima_and_smoothing_keeps_the_float_scores(
        on_load_dir: Path, model_factory: Any,
        sample_pairs: list[list[tuple[str, str]]]) -> None:
    import onnx

    from crossrank.models.local_int8 import fp32_weights
    from crossrank.models.smoothing import Calibration, smooth, weight_products

    manifest = Manifest.read(on_load_dir)
    assert manifest.int8_on_load is not None
    assert manifest.int8_on_load.calibration == "calibration.json"
    manifest.verify(on_load_dir)  # the file is under the manifest's checksums
    calibration = Calibration.read(on_load_dir / "calibration.json")
    model = fp32_weights(onnx.load(str(on_load_dir / "model.onnx")))
    products = weight_products(model)
    assert set(calibration.maxima) == set(products)
    assert all((m > 0).all() for m in calibration.maxima.values())
    smoothed = smooth(model, calibration, 0.7)
    muls = [n for n in smoothed.graph.node if n.name.startswith("crossrank/smooth")]
    assert len(muls) == len(products)
    fp32 = CrossEncoder.load(model_factory.exported("bert-64"))
    target = on_load_dir.parent / "smoothed.onnx"
    onnx.save(smoothed, str(target))
    float_smoothed = CrossEncoder(manifest, OnnxSession(target), fp32._tokenizer)
    # the shipped graph as it runs (fp16-stored weights cast to fp32): the same weights
    shipped = CrossEncoder(manifest, OnnxSession(on_load_dir / "model.onnx"), fp32._tokenizer)
    for pairs in sample_pairs:
        np.testing.assert_allclose(float_smoothed.raw_scores(pairs), shipped.raw_scores(pairs),
                                   atol=1e-4)


@pytest.mark.parametrize("isa", ISAS)
def test_an_isa_smooths_only_where_its_settings_say_and_the_model_is_calibrated(
        isa: str, on_load_dir: Path, tmp_path: Path) -> None:
    import onnx

    manifest = Manifest.read(on_load_dir)
    settings = local_settings(manifest, isa)
    assert settings.smooth_alpha == int8_settings(isa).smooth_alpha
    graph, _ = local_int8_graph(on_load_dir, manifest, isa=isa, cache=tmp_path)
    names = [n.name for n in onnx.load(str(graph)).graph.node]
    smoothed = any(name.startswith("crossrank/smooth") for name in names)
    assert smoothed == (settings.smooth_alpha is not None)
    assert int8_settings("avx2").smooth_alpha is not None  # what was measured to pay
    # a model without calibration maxima is quantised as it is on every ISA
    assert manifest.int8_on_load is not None
    bare = manifest.model_copy(update={
        "int8_on_load": manifest.int8_on_load.model_copy(update={"calibration": None})})
    assert local_settings(bare, isa).smooth_alpha is None


def test_calibrate_adds_maxima_to_an_older_export_and_gets_a_graph_of_its_own(
        on_load_dir: Path, model_factory: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from crossrank.models.errors import ManifestError
    from crossrank.models.local_int8 import calibrate_model_dir

    older = tmp_path / "older"
    shutil.copytree(on_load_dir, older)
    (older / "calibration.json").unlink()
    manifest = Manifest.read(older)
    assert manifest.int8_on_load is not None
    checksums = {k: v for k, v in manifest.checksums.items() if k != "calibration.json"}
    manifest.model_copy(update={
        "int8_on_load": manifest.int8_on_load.model_copy(update={"calibration": None}),
        "checksums": checksums}).write(older)
    monkeypatch.setenv("CROSSRANK_CACHE_DIR", str(tmp_path / "cache"))
    before = CrossEncoder.load(older)
    assert before.quantization is not None and before.quantization.smooth_alpha is None
    calibration = calibrate_model_dir(older)
    assert calibration.pairs > 0 and calibration.maxima
    after = CrossEncoder.load(older)  # checksums verified, the new file included
    assert after.quantization == int8_settings(cpu_isa())
    cached = sorted((tmp_path / "cache" / "int8").glob("*.onnx"))
    assert len(cached) == (2 if int8_settings(cpu_isa()).smooth_alpha is not None else 1)
    with pytest.raises(ManifestError, match="int8_on_load"):
        calibrate_model_dir(model_factory.exported("bert-64"))  # a plain fp32 export


def test_manifest_refuses_a_calibration_file_without_its_checksum(on_load_dir: Path) -> None:
    data = Manifest.read(on_load_dir).model_dump()
    del data["checksums"]["calibration.json"]
    with pytest.raises(ValueError, match="no checksum for the calibration file"):
        Manifest.model_validate(data)
