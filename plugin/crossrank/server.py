"""Assemble and run the proxy: settings -> models -> app -> uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from crossrank.config import Settings
from crossrank.models.batcher import BatchLimits
from crossrank.models.registry import ModelRegistry, discover_models
from crossrank.proxy import access_log
from crossrank.proxy.app import CrossrankApp

DEFAULT_MODELS_DIR = Path("onnx_models")


def resolve_models(settings: Settings, models_dir: Path | None = None) -> dict[str, Path]:
    """Models named in the settings, plus every model found under ``models_dir``.

    ``default`` is the model a policy gets when it names none: the settings' own ``default``
    entry, else the cross-encoder made by the default recipe (``crossrank train``: the shipped
    default model, not a student or a fine-tune shipped beside it), else the first
    cross-encoder in name order.
    """
    directory = models_dir or Path(os.environ.get("CROSSRANK_MODELS_DIR", DEFAULT_MODELS_DIR))
    found = discover_models(directory) if directory.is_dir() else {}
    models = {**found, **settings.models}
    if "default" not in models:
        chosen = default_cross_encoder(found)
        if chosen is not None:
            models["default"] = found[chosen]
    return models


def default_cross_encoder(found: dict[str, Path]) -> str | None:
    from crossrank.models.manifest import Manifest

    manifests = {name: Manifest.read(path) for name, path in sorted(found.items())}
    cross = [name for name, m in manifests.items() if m.kind == "cross-encoder"]
    recipe = [name for name in cross
              if (manifests[name].training or {}).get("recipe") == "default-model"]
    chosen = recipe or cross
    return chosen[0] if chosen else None


def build_app(settings: Settings, models_dir: Path | None = None) -> CrossrankApp:
    problem = settings.admin.startup_problem()
    if problem is not None:
        raise ValueError(problem)
    models = resolve_models(settings, models_dir)
    batching = settings.batching
    limits = (BatchLimits(batching.max_batch_pairs, batching.max_wait_ms,
                          batching.max_queue_pairs) if batching.enabled else None)
    registry = ModelRegistry(models, intra_op_threads=settings.intra_op_threads,
                             parallel_runs=settings.parallel_runs,
                             max_batch_tokens=settings.max_batch_tokens,
                             graph_optimization=settings.graph_optimization,
                             execution_provider=settings.execution_provider,
                             batching=limits)
    return CrossrankApp(settings, registry, registry.kinds)


def serve(settings: Settings, models_dir: Path | None = None) -> None:
    import uvicorn

    access_log.configure(logging.INFO)
    app = build_app(settings, models_dir)
    uvicorn.run(app, host=settings.host, port=settings.port, lifespan="on",
                loop="auto", http="auto", log_level="info", access_log=False, log_config=None,
                timeout_graceful_shutdown=30, server_header=False, date_header=False,
                # X-Forwarded-* rewriting of the client address: crossrank never reads it
                proxy_headers=False)
