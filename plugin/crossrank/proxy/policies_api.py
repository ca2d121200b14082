"""GET, PUT and DELETE /_crossrank/policies[/{name}]: the per-index policies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from crossrank.config import AdminSettings
from crossrank.policy import Policy, policy_model_problems
from crossrank.proxy.admin_auth import check_token
from crossrank.proxy.errors import InvalidJSON, InvalidPolicy, MethodNotAllowed, NotFound
from crossrank.proxy.http import Incoming, Send, respond
from crossrank.proxy.policy_store import PolicyStore


def validation_reason(exc: ValidationError) -> tuple[str, str]:
    """The first error as (field path, message), e.g. ('window', 'Input should be ...')."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return field, f"[{field}] {first['msg']}"


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from exc


async def handle_policies(request: Incoming, send: Send, policies: PolicyStore) -> None:
    if request.method != "GET":
        raise MethodNotAllowed(f"{request.method} is not allowed on /_crossrank/policies")
    body = {"policies": [p.model_dump(mode="json") for p in policies.all()]}
    await respond(send, 200, orjson.dumps(body))


async def handle_policy(request: Incoming, name: str, send: Send, policies: PolicyStore,
                        admin: AdminSettings, models: Mapping[str, str]) -> None:
    if request.method == "GET":
        policy = policies.get(name)
        if policy is None:
            raise NotFound(f"no policy named [{name}]")
        await respond(send, 200, orjson.dumps(policy.model_dump(mode="json")))
        return
    if request.method not in ("PUT", "DELETE"):
        raise MethodNotAllowed(f"{request.method} is not allowed on a policy")
    check_token(request, admin)
    if request.method == "DELETE":
        if not await policies.delete(name):
            raise NotFound(f"no policy named [{name}]")
        await respond(send, 200, orjson.dumps({"acknowledged": True, "result": "deleted"}))
        return
    data = load_json(await request.body())
    if not isinstance(data, dict):
        raise InvalidPolicy("a policy must be a JSON object", field="body")
    if data.setdefault("name", name) != name:
        raise InvalidPolicy(f"[name] '{data['name']}' does not match the path's '{name}'",
                            field="name")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        field, reason = validation_reason(exc)
        raise InvalidPolicy(reason, field=field) from exc
    problems = policy_model_problems(policy, models)
    if problems:
        field, reason = problems[0]
        raise InvalidPolicy(f"[{field}] {reason}", field=field)
    created = await policies.put(policy)
    await respond(send, 201 if created else 200, orjson.dumps({
        "acknowledged": True, "result": "created" if created else "updated",
        "policy": policy.model_dump(mode="json")}))
