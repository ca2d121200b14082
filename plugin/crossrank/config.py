"""Settings and per-index policies: the one definition read by the CLI, the environment,
the config file and the admin API.

A settings file is YAML::

    upstream:
      url: http://127.0.0.1:9200
    models:
      default: onnx_models/crossrank-minilm-l6-int8
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

import fnmatch
import os
import re
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,127}$")


class _Strict(BaseModel):
    """Unknown fields are refused, so a typo in a policy is a 400, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ABSplit(_Strict):
    """How the default arm is chosen when the request does not force one with ``?rerank=``.

    ``always``: every request is reranked. ``split``: a stable hash of the key (the header
    ``key_header`` if present, else the query text) sends ``rerank_share`` of keys to rerank.
    """

    mode: Literal["always", "split"] = "always"
    rerank_share: float = Field(0.5, ge=0.0, le=1.0)
    key_header: str = "x-crossrank-user"

    @field_validator("key_header")
    @classmethod
    def _lower_header(cls, value: str) -> str:
        return value.lower()


class Policy(_Strict):
    """Reranking policy for one index name, alias or wildcard pattern."""

    name: str
    indices: list[str] = Field(default_factory=list)
    enabled: bool = True
    model: str = "default"
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    template: str | None = None
    separator: str = " "
    window: int = Field(50, ge=1, le=10_000)
    max_window: int = Field(200, ge=1, le=10_000)
    max_length: int | None = Field(None, ge=8, le=8192)
    score_mode: Literal["replace", "blend"] = "replace"
    blend_alpha: float = Field(0.5, ge=0.0, le=1.0)
    budget_ms: float | None = Field(None, gt=0)
    ab: ABSplit = Field(default_factory=ABSplit)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits, '_', '-', '.' (at most 128)")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        # A policy names a model registered by the operator; never a path or a URL.
        if not _NAME_RE.match(value):
            raise ValueError("must be the name of a configured model, not a path or URL")
        return value

    @field_validator("text_fields")
    @classmethod
    def _check_fields(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path or path.startswith(".") or path.endswith(".") or ".." in path:
                raise ValueError(f"invalid _source path {path!r}")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Policy:
        if self.window > self.max_window:
            raise ValueError(f"window ({self.window}) exceeds max_window ({self.max_window})")
        if self.template is not None:
            names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
            unknown = names - set(self.text_fields)
            if unknown:
                raise ValueError(f"template names fields not in text_fields: {sorted(unknown)}")
        if not self.indices:
            object.__setattr__(self, "indices", [self.name])
        return self

    def matches(self, index: str) -> bool:
        return any(fnmatch.fnmatchcase(index, pattern) for pattern in self.indices)


class UpstreamSettings(_Strict):
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
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class LimitSettings(_Strict):
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(100, ge=4)


class AdminSettings(_Strict):
    token: str | None = None
    insecure_no_token: bool = False


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    models: dict[str, Path] = Field(default_factory=dict)
    intra_op_threads: int = Field(0, ge=0)
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


def policy_for(policies: list[Policy], indices: list[str]) -> Policy | None:
    """The policy for a search's target indices: the first policy that matches every target.

    A search over indices with different policies (or some with none) is not reranked, since
    one window cannot honour two policies. A disabled policy still matches: the search is then
    answered as the baseline arm with the reason ``policy_disabled``.
    """
    if not indices:
        return None
    for policy in policies:
        if all(policy.matches(index) for index in indices):
            return policy
    return None
