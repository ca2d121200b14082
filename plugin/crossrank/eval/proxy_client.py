"""The evaluation's one HTTP client for the crossrank proxy: timed searches, policies, rerank.

It talks to the proxy exactly as an application would, so the latency it records is the
latency a client sees: request, proxy work, OpenSearch, response, JSON decoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from crossrank.types import JSONObject

ADMIN_TOKEN_HEADER = "X-Crossrank-Admin-Token"


class EvalError(RuntimeError):
    """The evaluation cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Timed:
    """One answered search or rerank call."""

    body: JSONObject
    elapsed_ms: float
    status: str  # X-Crossrank-Status, "" when absent
    reason: str
    server_timing: dict[str, float]
    hybrid: str = ""  # X-Crossrank-Hybrid: rrf, rsf, skipped:<why>, fallback:<why>; "" when absent


def _server_timing(value: str | None) -> dict[str, float]:
    """``retrieve;dur=3.1, score;dur=40.2`` -> {"retrieve": 3.1, "score": 40.2}."""
    timings: dict[str, float] = {}
    for part in (value or "").split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                timings[name] = float(rest[4:])
            except ValueError:
                continue
    return timings


def _reason(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return response.text[:300]
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("type") or error)
    return str(error)


class ProxyClient:
    def __init__(self, url: str, *, admin_token: str | None = None,
                 timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self._admin_token = admin_token
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProxyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, body: Any = None,
              params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[httpx.Response, float]:
        """The response and the milliseconds it took (sent until the body was read)."""
        content = orjson.dumps(body) if body is not None else None
        sent = {"content-type": "application/json", **(headers or {})}
        began = time.perf_counter()
        try:
            response = self._http.request(method, path, content=content, params=params,
                                          headers=sent)
        except httpx.HTTPError as exc:
            raise EvalError(f"cannot reach the crossrank proxy at {self.url}: {exc}") from exc
        return response, (time.perf_counter() - began) * 1000

    def search(self, index: str, body: JSONObject, params: dict[str, str]) -> Timed:
        began = time.perf_counter()
        response, _ = self._call("POST", f"/{quote(index, safe='')}/_search", body=body,
                                 params=params)
        if response.status_code != 200:
            raise EvalError(f"search on [{index}] with {params} failed with "
                            f"{response.status_code}: {_reason(response)}")
        decoded = orjson.loads(response.content)
        elapsed = (time.perf_counter() - began) * 1000
        return Timed(decoded, elapsed, response.headers.get("x-crossrank-status", ""),
                     response.headers.get("x-crossrank-reason", ""),
                     _server_timing(response.headers.get("server-timing")),
                     response.headers.get("x-crossrank-hybrid", ""))

    def mget(self, index: str, ids: list[str], source: list[str]) -> dict[str, JSONObject]:
        """``_source`` (only ``source`` fields) of each id that exists, through the proxy."""
        response, _ = self._call("POST", f"/{quote(index, safe='')}/_mget",
                                 body={"ids": ids}, params={"_source": ",".join(source)})
        if response.status_code != 200:
            raise EvalError(f"_mget on [{index}] failed with {response.status_code}: "
                            f"{_reason(response)}")
        docs = orjson.loads(response.content).get("docs", [])
        return {str(doc["_id"]): doc.get("_source") or {} for doc in docs
                if isinstance(doc, dict) and doc.get("found")}

    def rerank(self, query: str, documents: list[JSONObject], model: str) -> Timed:
        began = time.perf_counter()
        response, _ = self._call("POST", "/_crossrank/rerank", body={
            "query": query, "documents": documents, "model": model})
        if response.status_code != 200:
            raise EvalError(f"POST /_crossrank/rerank failed with {response.status_code}: "
                            f"{_reason(response)}")
        decoded = orjson.loads(response.content)
        return Timed(decoded, (time.perf_counter() - began) * 1000, "reranked", "", {})

    def put_policy(self, name: str, policy: JSONObject) -> None:
        headers = {ADMIN_TOKEN_HEADER: self._admin_token} if self._admin_token else {}
        response, _ = self._call("PUT", f"/_crossrank/policies/{quote(name, safe='')}",
                                 body=policy, headers=headers)
        if response.status_code == 401:
            raise EvalError(f"the proxy refused the policy: {_reason(response)}; pass "
                            "--admin-token (or set CROSSRANK_ADMIN_TOKEN), or manage the "
                            "policy yourself and use --no-policy")
        if response.status_code not in (200, 201):
            raise EvalError(f"PUT /_crossrank/policies/{name} failed with "
                            f"{response.status_code}: {_reason(response)}")

    def get_policy(self, name: str) -> JSONObject:
        """The policy as the proxy holds it (its ``embed`` section completed)."""
        response, _ = self._call("GET", f"/_crossrank/policies/{quote(name, safe='')}")
        if response.status_code != 200:
            raise EvalError(f"GET /_crossrank/policies/{name} failed with "
                            f"{response.status_code}: {_reason(response)}")
        body: JSONObject = orjson.loads(response.content)
        return body

    def vector_mapping(self, index: str) -> JSONObject:
        """What the policy of ``index`` needs for its vectors: ``GET /_crossrank/mappings/``
        (policy, vector_field, embedder, dimension, and the index body with that mapping)."""
        response, _ = self._call("GET", f"/_crossrank/mappings/{quote(index, safe='')}")
        if response.status_code == 404:
            raise EvalError(f"no policy with an embed section covers index [{index}], so "
                            "nothing would embed its documents for the hybrid arms "
                            f"({_reason(response)}); without --no-policy crossrank eval puts "
                            "one, otherwise add an embed section to the index's policy")
        if response.status_code != 200:
            raise EvalError(f"GET /_crossrank/mappings/{index} failed with "
                            f"{response.status_code}: {_reason(response)}")
        body: JSONObject = orjson.loads(response.content)
        return body

    def health(self) -> JSONObject:
        response, _ = self._call("GET", "/_crossrank/health")
        try:
            body: JSONObject = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise EvalError(f"{self.url} does not look like a crossrank proxy "
                            f"(GET /_crossrank/health answered {response.status_code})") from exc
        return body
