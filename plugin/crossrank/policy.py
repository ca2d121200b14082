"""Per-index policies: which indices crossrank reranks, how, and what it embeds.

The one definition read by the settings file (``crossrank.config``), the policy index, the
admin API and the planner. Unknown fields are refused, so a typo in a policy is a 400.
"""

from __future__ import annotations

import fnmatch
import math
import re
import string
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crossrank.fusion import LIST_FUSIONS, NORMALIZATIONS

# fullmatch, never match: "$" alone would let a trailing newline through.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,127}$")
# The same rule in the JSON schema of the admin API (crossrank.proxy.openapi).
_NAME_SCHEMA: dict[str, Any] = {"pattern": _NAME_RE.pattern}


class Strict(BaseModel):
    """Unknown fields are refused, so a typo in a policy is a 400, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ABSplit(Strict):
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


def _model_name(value: str, kind: str = "") -> str:
    """A policy names a model registered by the operator; never a path or a URL."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"must be the name of a configured {kind}model, not a path or URL")
    return value


def _check_path(path: str) -> str:
    if not path or path.startswith(".") or path.endswith(".") or ".." in path:
        raise ValueError(f"invalid _source path {path!r}")
    return path


def _template_fields(template: str) -> set[str]:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if "" in fields:  # "{}" would leave the reranker nothing to fill it with
        raise ValueError("every template field must name a text field, as {title}; "
                         "'{}' names none")
    return fields


class EmbedSection(Strict):
    """The ingest hook: documents written to the policy's indices get a vector.

    The text is read from ``text_fields`` (joined with ``separator``, or laid out by
    ``template``) exactly as the reranker reads a hit; left out, the policy's own
    ``text_fields``/``template``/``separator`` are used. The vector is written to
    ``vector_field``, a ``knn_vector`` field (see ``crossrank.ingest.mapping``).
    """

    model: str = Field(json_schema_extra=_NAME_SCHEMA)
    vector_field: str
    text_fields: list[str] | None = Field(None, min_length=1)
    template: str | None = None
    separator: str | None = None

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return _model_name(value, "embedder ")

    @field_validator("vector_field")
    @classmethod
    def _check_vector_field(cls, value: str) -> str:
        return _check_path(value)

    @field_validator("text_fields")
    @classmethod
    def _check_fields(cls, value: list[str] | None) -> list[str] | None:
        for path in value or []:
            _check_path(path)
        return value

    @property
    def fields(self) -> list[str]:
        """The text fields (filled in from the policy when the section leaves them out)."""
        assert self.text_fields is not None
        return self.text_fields


class HybridSection(Strict):
    """Proxy-side hybrid retrieval: BM25 and k-NN in one ``_msearch``, fused in the proxy.

    ``fusion``: ``rrf`` (``sum w_i / (rank_constant + rank_i)``, 1-based ranks, as OpenSearch's
    ``score-ranker-processor``) or ``rsf`` (min-max normalised scores, weighted mean).
    ``weights`` are [BM25, k-NN]. ``depth`` candidates are asked from each side (at least the
    page the request needs). ``vector_field`` and ``model`` default to the ``embed`` section's.
    """

    enabled: bool = True
    fusion: str = Field("rrf", json_schema_extra={"enum": list(LIST_FUSIONS)})
    """A name in ``crossrank.fusion.LIST_FUSIONS``."""
    rank_constant: int = Field(60, ge=1, le=10_000)
    weights: list[float] = Field(default_factory=lambda: [1.0, 1.0], min_length=2, max_length=2)
    depth: int = Field(100, ge=1, le=10_000)
    vector_field: str | None = None
    model: str | None = Field(None, json_schema_extra=_NAME_SCHEMA)

    @field_validator("fusion")
    @classmethod
    def _check_fusion(cls, value: str) -> str:
        if value not in LIST_FUSIONS:
            raise ValueError(f"unknown fusion {value!r}; expected one of "
                             f"{', '.join(LIST_FUSIONS)}")
        return value

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: list[float]) -> list[float]:
        if not all(math.isfinite(w) and w >= 0 for w in value) or not any(value):
            raise ValueError("must be two finite, non-negative numbers, not both zero")
        return value

    @field_validator("vector_field")
    @classmethod
    def _check_vector_field(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        return None if value is None else _model_name(value, "embedder ")


class CascadeSection(Strict):
    """Two models in turn: ``model`` (a smaller, faster cross-encoder) scores the whole window,
    then the policy's own model rescores only the first ``rescore`` hits of that list, as the
    policy's scoring ranks it (with ``blend``: the small model blended with the first stage,
    so a weak small model cannot push the first stage's best out of reach). The rescored
    hits' scores are mapped onto the first model's scale over the same hits (same mean and
    spread): among themselves they take the second model's order, and as a group they stand
    where the first model put them against the rest of the window (a hit the second model
    thinks poorly of can fall below hits only the first one scored). With ``rescore`` equal
    to the window the result is the policy's model alone (the mapping is affine, and so is
    every normalisation)."""

    model: str = Field(json_schema_extra=_NAME_SCHEMA)
    rescore: int = Field(ge=1, le=10_000)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return _model_name(value)


class ChunkingSection(Strict):
    """Long documents read in windows: a document longer than one pair's ``max_length`` is
    scored in up to ``max_chunks`` windows (the query in each, consecutive windows sharing
    ``overlap`` tokens), and its score is its best window's. Costs up to ``max_chunks`` times
    the scoring of the long documents; short ones cost what they did. A search may set
    ``ext.crossrank.max_chunks`` (1: off) for itself."""

    max_chunks: int = Field(4, ge=1, le=64)
    overlap: int = Field(32, ge=0, le=256)


class Policy(Strict):
    """Reranking policy for one index name, alias or wildcard pattern."""

    name: str = Field(json_schema_extra=_NAME_SCHEMA)
    indices: list[str] = Field(default_factory=list)
    enabled: bool = True
    model: str = Field("default", json_schema_extra=_NAME_SCHEMA)
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    template: str | None = None
    separator: str = " "
    # Scoring: null (left out) takes the model card's recommendation for the kind of first
    # stage (bm25, knn, hybrid), else the built-in defaults (window 50, replace, alpha 0.5,
    # min_max); see crossrank.search.scoring.
    window: int | None = Field(None, ge=1, le=10_000)
    max_window: int = Field(200, ge=1, le=10_000)
    max_length: int | None = Field(None, ge=8, le=8192)
    score_mode: Literal["replace", "blend"] | None = None
    blend_alpha: float | None = Field(None, ge=0.0, le=1.0)
    normalization: str | None = Field(None, json_schema_extra={
        "anyOf": [{"enum": list(NORMALIZATIONS)}, {"type": "null"}]})
    """How each score list is normalised before a blend: a name in
    ``crossrank.fusion.NORMALIZATIONS`` (min_max, z_score, rrf)."""
    # Scoring time allowed per search, queueing included; past it the search is answered in
    # first-stage order (reason budget_exceeded). null: no limit (a stalled model then holds
    # the search until the client gives up).
    budget_ms: float | None = Field(10_000, gt=0)
    ab: ABSplit = Field(default_factory=ABSplit)
    embed: EmbedSection | None = None
    hybrid: HybridSection | None = None
    cascade: CascadeSection | None = None
    chunking: ChunkingSection | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("must be lowercase letters, digits, '_', '-', '.' (at most 128)")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return _model_name(value)

    @field_validator("text_fields")
    @classmethod
    def _check_fields(cls, value: list[str]) -> list[str]:
        for path in value:
            _check_path(path)
        return value

    @field_validator("normalization")
    @classmethod
    def _check_normalization(cls, value: str | None) -> str | None:
        if value is not None and value not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {value!r}; expected one of "
                             f"{', '.join(NORMALIZATIONS)}")
        return value

    @field_validator("embed")
    @classmethod
    def _complete_embed(cls, value: EmbedSection | None,
                        info: ValidationInfo) -> EmbedSection | None:
        if value is None:
            return None
        if value.text_fields is None:
            value = value.model_copy(update={
                "text_fields": list(info.data.get("text_fields") or ["text"]),
                "template": info.data.get("template") if value.template is None
                else value.template})
        if value.separator is None:
            value = value.model_copy(update={"separator": info.data.get("separator", " ")})
        if value.template is not None:
            unknown = _template_fields(value.template) - set(value.fields)
            if unknown:
                raise ValueError(f"embed.template names fields not in embed.text_fields: "
                                 f"{sorted(unknown)}")
        for path in value.fields:
            if _overlaps(path, value.vector_field):
                raise ValueError(f"embed.vector_field {value.vector_field!r} overlaps the text "
                                 f"field {path!r}")
        return value

    @field_validator("hybrid")
    @classmethod
    def _complete_hybrid(cls, value: HybridSection | None,
                         info: ValidationInfo) -> HybridSection | None:
        if value is None:
            return None
        embed: EmbedSection | None = info.data.get("embed")
        update: dict[str, str] = {}
        for name in ("vector_field", "model"):
            if getattr(value, name) is None:
                if embed is None and not value.enabled:
                    continue
                if embed is None:
                    raise ValueError(f"hybrid.{name} is required when the policy has no "
                                     f"embed section")
                update[name] = getattr(embed, name)
        return value.model_copy(update=update) if update else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Policy:
        if self.window is not None and self.window > self.max_window:
            raise ValueError(f"window ({self.window}) exceeds max_window ({self.max_window})")
        if self.template is not None:
            unknown = _template_fields(self.template) - set(self.text_fields)
            if unknown:
                raise ValueError(f"template names fields not in text_fields: {sorted(unknown)}")
        if not self.indices:
            object.__setattr__(self, "indices", [self.name])
        return self

    def matches(self, index: str) -> bool:
        return any(fnmatch.fnmatchcase(index, pattern) for pattern in self.indices)


def _overlaps(a: str, b: str) -> bool:
    """Whether one dotted path is the other or lies under it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def policy_model_problems(policy: Policy, kinds: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field, reason) for each model the policy names that is not loaded as the kind it
    needs; ``kinds`` maps each loaded model to its kind (``cross-encoder`` or ``embedder``)."""
    wanted = [("model", policy.model, "cross-encoder")]
    if policy.cascade is not None:
        wanted.append(("cascade.model", policy.cascade.model, "cross-encoder"))
    if policy.embed is not None:
        wanted.append(("embed.model", policy.embed.model, "embedder"))
    if policy.hybrid is not None and policy.hybrid.enabled and policy.hybrid.model is not None:
        wanted.append(("hybrid.model", policy.hybrid.model, "embedder"))
    problems = []
    for field, name, kind in wanted:
        found = kinds.get(name)
        if found is None:
            loaded = ", ".join(sorted(n for n, k in kinds.items() if k == kind)) or "none"
            problems.append((field, f"[{field}] no {kind} named '{name}' is loaded "
                                    f"(loaded: {loaded})"))
        elif found != kind:
            problems.append((field, f"[{field}] model '{name}' is {_a(found)}, not {_a(kind)}"))
    return problems


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


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
