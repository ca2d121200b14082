"""The execution provider is a setting: CPU everywhere, a GPU provider where one exists, and a
clear error (never a silent CPU fall back) where the installed onnxruntime lacks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from crossrank.config import Settings
from crossrank.models import CrossEncoder, ModelRegistry
from crossrank.models.errors import ModelError
from crossrank.models.onnx_session import PROVIDERS, execution_providers

PAIRS = [("gout treatment", "allopurinol lowers uric acid"), ("gout treatment", "bread")]


def test_cpu_runs_on_the_cpu_provider_alone(tiny_cross_encoder_dir: Path) -> None:
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    registry = ModelRegistry({"default": tiny_cross_encoder_dir}, execution_provider="cpu")
    try:
        model = registry.cross_encoder("default")
        assert model._session.providers == ["CPUExecutionProvider"]
        assert model.score(PAIRS).shape == (2,)
    finally:
        registry.close()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="this onnxruntime has CUDA: the missing-provider error cannot occur")
def test_a_provider_the_build_lacks_is_a_clear_error(tiny_cross_encoder_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"'cuda' \(CUDAExecutionProvider\) is not available"
                                         r".*onnxruntime-gpu"):
        CrossEncoder.load(tiny_cross_encoder_dir, execution_provider="cuda")


def test_unknown_providers_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="execution_provider must be one of cpu, cuda"):
        execution_providers("gpu")
    with pytest.raises(ValidationError, match="execution_provider"):
        Settings(execution_provider="gpu")  # type: ignore[arg-type]
    assert set(PROVIDERS) == {"cpu", "cuda", "tensorrt", "openvino"}


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu and an NVIDIA GPU")
def test_cuda_scores_as_the_cpu_does(tiny_cross_encoder_dir: Path) -> None:
    cpu = CrossEncoder.load(tiny_cross_encoder_dir).score(PAIRS)
    gpu = CrossEncoder.load(tiny_cross_encoder_dir, execution_provider="cuda")
    assert gpu._session.providers[0] == "CUDAExecutionProvider"
    assert np.abs(gpu.score(PAIRS) - cpu).max() < 1e-3
