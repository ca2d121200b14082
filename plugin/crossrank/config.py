"""Settings: the one definition read by the CLI, the environment, the config file and the
admin API (the policies inside them are ``crossrank.policy``).

A settings file is YAML::

    upstream:
      url: http://127.0.0.1:9200
    models:
      default: onnx_models/crossrank-minilm-l6-scifact
    policies:
      - name: scifact
        indices: ["scifact*"]
        text_fields: [title, text]
        template: "{title}. {text}"
        window: 50

Environment variables override the file: ``CROSSRANK_UPSTREAM_URL``, ``CROSSRANK_PORT``, ...
(see ``Settings.from_sources``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from crossrank.policy import Policy, Strict


class UpstreamSettings(Strict):
    # One node, or several nodes of the same cluster separated by commas: requests rotate over
    # them, and one whose connection cannot be made goes to the next (``Upstream``).
    url: str = "http://127.0.0.1:9200"
    username: str | None = None
    password: str | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    pool_size: int = Field(100, ge=1)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        urls = [part.strip().rstrip("/") for part in value.split(",")]
        if not all(url.startswith(("http://", "https://")) for url in urls):
            raise ValueError("must start with http:// or https:// (several: comma-separated)")
        return ",".join(urls)

    @property
    def urls(self) -> list[str]:
        return self.url.split(",")


class LimitSettings(Strict):
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # orjson writes at most 254 levels (it reads 1,024): a deeper body could not be re-sent
    max_json_depth: int = Field(100, ge=4, le=254)


class BatchingSettings(Strict):
    """Cross-request micro-batching per cross-encoder (see ``crossrank.models.batcher``)."""

    enabled: bool = True
    max_batch_pairs: int = Field(256, ge=1)
    max_wait_ms: float = Field(0.0, ge=0, le=1000)
    max_queue_pairs: int = Field(8192, ge=1)


class AdminSettings(Strict):
    """The write side of /_crossrank (policies, mappings): on by default, behind a token.

    A server with admin enabled and no token refuses to start, unless ``insecure_no_token``
    (development only) says so on purpose; ``enabled: false`` serves policies from the
    settings file and the policy index read-only.
    """

    enabled: bool = True
    token: str | None = Field(None, min_length=16)
    insecure_no_token: bool = False

    def startup_problem(self) -> str | None:
        """Why a server with these settings must not start, or None."""
        if self.enabled and self.token is None and not self.insecure_no_token:
            return ("admin endpoints are enabled but no admin token is set: set "
                    "CROSSRANK_ADMIN_TOKEN (16 characters or more), or admin.enabled: false "
                    "(--no-admin) for a read-only proxy, or --insecure-admin for development")
        return None


class Settings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    models: dict[str, Path] = Field(default_factory=dict)
    intra_op_threads: int = Field(1, ge=0)
    """Threads inside one ONNX run (0: all cores)."""
    parallel_runs: int = Field(0, ge=0)
    """ONNX runs (token batches) at once per model (0: cores / intra_op_threads)."""
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    """ONNX Runtime's graph optimisation level when a model is loaded."""
    execution_provider: Literal["cpu", "cuda", "tensorrt", "openvino"] = "cpu"
    """Where the models run (``crossrank.models.onnx_session.PROVIDERS``): cuda and tensorrt
    need the onnxruntime-gpu package and a GPU, openvino onnxruntime-openvino; a provider the
    installed onnxruntime lacks stops the server at start-up with a clear error."""
    max_batch_tokens: int = Field(256, ge=8)
    """Padded tokens per ONNX run (a longer sequence runs alone); the runtime's own default,
    ``models.token_batches.DEFAULT_MAX_BATCH_TOKENS``, written out so that reading settings
    does not load ONNX Runtime (a test keeps the two equal)."""
    score_cache_entries: int = Field(100_000, ge=0)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    policies: list[Policy] = Field(default_factory=list)
    policy_index: str = ".crossrank-policies"
    policy_refresh_s: float = Field(2.0, gt=0)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)

    @classmethod
    def from_sources(cls, path: Path | None = None, env: dict[str, str] | None = None,
                     **overrides: Any) -> Settings:
        """File, then environment, then explicit overrides (the CLI's flags)."""
        data: dict[str, Any] = {}
        if path is not None:
            loaded = yaml.safe_load(path.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping at the top level")
            data.update(loaded)
        environ = os.environ if env is None else env
        upstream = dict(data.get("upstream") or {})
        for key, field in (("CROSSRANK_UPSTREAM_URL", "url"),
                           ("CROSSRANK_UPSTREAM_USERNAME", "username"),
                           ("CROSSRANK_UPSTREAM_PASSWORD", "password"),
                           ("CROSSRANK_UPSTREAM_CA_CERTS", "ca_certs")):
            if environ.get(key):
                upstream[field] = environ[key]
        if upstream:
            data["upstream"] = upstream
        if environ.get("CROSSRANK_HOST"):
            data["host"] = environ["CROSSRANK_HOST"]
        if environ.get("CROSSRANK_PORT"):
            data["port"] = int(environ["CROSSRANK_PORT"])
        if environ.get("CROSSRANK_ADMIN_TOKEN"):
            data["admin"] = {**(data.get("admin") or {}), "token": environ["CROSSRANK_ADMIN_TOKEN"]}
        for key, value in overrides.items():
            if value is not None:
                data[key] = value
        return cls.model_validate(data)
