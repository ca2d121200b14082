"""Per-index policies, shared by every proxy replica through one OpenSearch index.

The index is the source of truth. At start-up the policies of the config file are written into
it unless a policy of the same name is already there (so an admin's change survives a restart),
then every replica re-reads the index every ``refresh_s`` seconds. A replica that cannot reach
OpenSearch keeps serving the last policies it read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import quote

import orjson
from pydantic import ValidationError

from crossrank.policy import Policy, policy_for
from crossrank.proxy.errors import CrossrankError, UpstreamError
from crossrank.proxy.upstream import Upstream

log = logging.getLogger("crossrank.policies")

_JSON = [(b"content-type", b"application/json")]
_MAPPING = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0, "hidden": True}},
    # Policies are stored, not searched: nothing in them is indexed, so no mapping conflicts.
    "mappings": {"dynamic": False, "properties": {"name": {"type": "keyword"},
                                                  "updated_at": {"type": "date"}}},
}


class PolicyStore:
    def __init__(self, upstream: Upstream, index: str, seed: list[Policy],
                 refresh_s: float) -> None:
        self._upstream = upstream
        self._index = index
        self._seed = seed
        self._refresh_s = refresh_s
        self._policies: dict[str, Policy] = {p.name: p for p in seed}
        self._generation = 0  # counts local writes (put, delete); see refresh()
        self._task: asyncio.Task[None] | None = None
        self.last_refresh: float | None = None

    # -- reading (no I/O: the hot path only looks at the snapshot) ---------------------------

    def all(self) -> list[Policy]:
        return sorted(self._policies.values(), key=lambda p: p.name)

    def get(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def for_indices(self, indices: tuple[str, ...] | list[str]) -> Policy | None:
        return policy_for(self.all(), list(indices))

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._ensure_index()
            for policy in self._seed:
                await self._write(policy, create_only=True)
            await self.refresh()
        except (UpstreamError, CrossrankError) as exc:
            log.warning("policies: OpenSearch not ready (%s); serving the config file's "
                        "policies until it is", exc.reason)
        self._task = asyncio.create_task(self._refresh_loop(), name="crossrank-policy-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._ensure_index()
                await self.refresh()
            except CrossrankError as exc:
                log.warning("policies: refresh failed: %s", exc.reason)
            except Exception:  # the loop must survive anything one round throws
                log.exception("policies: unexpected error during refresh")

    async def refresh(self) -> None:
        # A put or delete while this read is in flight makes its snapshot stale (it may have
        # been taken before the write was visible): it is dropped, the next round reads again.
        generation = self._generation
        response = await self._upstream.request(
            "POST", f"/{self._index}/_search", b"", _JSON,
            orjson.dumps({"size": 10_000, "query": {"match_all": {}}}))
        if response.status_code == 404:
            return
        if response.status_code != 200:
            raise UpstreamError(f"reading policies failed with {response.status_code}")
        loaded: dict[str, Policy] = {}
        for hit in orjson.loads(response.content)["hits"]["hits"]:
            try:
                policy = Policy.model_validate(hit["_source"]["policy"])
            except (KeyError, TypeError, ValidationError) as exc:
                log.warning("policies: ignoring invalid stored policy %s: %s", hit.get("_id"), exc)
                continue
            loaded[policy.name] = policy
        if generation != self._generation:
            return
        self._policies = loaded
        self.last_refresh = time.time()

    # -- writing ------------------------------------------------------------------------------

    async def put(self, policy: Policy) -> bool:
        """Store a policy; returns True when it was created, False when replaced."""
        await self._ensure_index()
        created = await self._write(policy, create_only=False)
        self._policies = {**self._policies, policy.name: policy}
        self._generation += 1
        return created

    async def delete(self, name: str) -> bool:
        response = await self._upstream.request(
            "DELETE", f"/{self._index}/_doc/{quote(name, safe='')}", b"refresh=wait_for")
        if response.status_code not in (200, 404):
            raise UpstreamError(f"deleting policy failed with {response.status_code}: "
                                f"{response.text[:200]}")
        existed = name in self._policies or response.status_code == 200
        self._policies = {k: v for k, v in self._policies.items() if k != name}
        self._generation += 1
        return existed

    async def _ensure_index(self) -> None:
        head = await self._upstream.request("HEAD", f"/{self._index}")
        if head.status_code == 200:
            return
        response = await self._upstream.request("PUT", f"/{self._index}", b"", _JSON,
                                                orjson.dumps(_MAPPING))
        if response.status_code != 200 and b"resource_already_exists" not in response.content:
            raise UpstreamError(f"creating the policy index failed with "
                                f"{response.status_code}: {response.text[:200]}")

    async def _write(self, policy: Policy, *, create_only: bool) -> bool:
        doc = {"name": policy.name, "updated_at": int(time.time() * 1000),
               "policy": policy.model_dump(mode="json")}
        op = b"&op_type=create" if create_only else b""
        response = await self._upstream.request(
            "PUT", f"/{self._index}/_doc/{quote(policy.name, safe='')}",
            b"refresh=wait_for" + op, _JSON, orjson.dumps(doc))
        if create_only and response.status_code == 409:
            return False
        if response.status_code not in (200, 201):
            raise UpstreamError(f"storing policy failed with {response.status_code}: "
                                f"{response.text[:200]}")
        return response.status_code == 201
