"""The admin token: writes under /_crossrank (policies, mappings) need it; reads do not."""

from __future__ import annotations

import hmac

from crossrank.config import AdminSettings
from crossrank.proxy.errors import Forbidden, Unauthorized
from crossrank.proxy.http import Incoming

ADMIN_TOKEN_HEADER = "x-crossrank-admin-token"


def check_token(request: Incoming, admin: AdminSettings) -> None:
    if not admin.enabled:
        raise Forbidden("admin endpoints are disabled on this proxy (admin.enabled: false)")
    if admin.token is None:
        if admin.insecure_no_token:
            return
        raise Unauthorized("admin endpoints are disabled: no admin token is configured")
    given = request.header(ADMIN_TOKEN_HEADER) or ""
    if not hmac.compare_digest(given.encode(), admin.token.encode()):
        raise Unauthorized(f"missing or wrong {ADMIN_TOKEN_HEADER} header")
