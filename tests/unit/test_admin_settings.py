"""Admin start-up rules: enabled admin needs a token, unless development or read-only says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from crossrank.cli import app
from crossrank.config import AdminSettings, Settings
from crossrank.server import build_app


def test_enabled_admin_without_a_token_is_a_startup_problem() -> None:
    problem = AdminSettings().startup_problem()
    assert problem is not None and "CROSSRANK_ADMIN_TOKEN" in problem
    assert AdminSettings(token="a-token-of-16-chars").startup_problem() is None
    assert AdminSettings(insecure_no_token=True).startup_problem() is None
    assert AdminSettings(enabled=False).startup_problem() is None


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        AdminSettings(token="short")


def test_build_app_refuses_enabled_admin_without_token(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no admin token is set"):
        build_app(Settings(), tmp_path)


def test_serve_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("CROSSRANK_ADMIN_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--models-dir", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "no admin token is set" in result.output
    assert "--no-admin" in result.output and "--insecure-admin" in result.output


def test_json_depth_limit_stays_within_what_orjson_can_write_back() -> None:
    from crossrank.config import LimitSettings

    assert LimitSettings(max_json_depth=254).max_json_depth == 254
    with pytest.raises(ValidationError):
        LimitSettings(max_json_depth=255)
