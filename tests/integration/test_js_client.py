"""The OpenSearch JavaScript client against the real proxy and node: runs the node test suite in
tests/clients/js/ (node's own test runner), installing its pinned dependencies with ``npm ci``
the first time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from proxy_fixtures import ServedProxy

pytestmark = pytest.mark.integration

SUITE = Path(__file__).resolve().parents[1] / "clients" / "js"


def _install() -> None:
    if (SUITE / "node_modules" / "@opensearch-project" / "opensearch").is_dir():
        return
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed for the JavaScript client suite"
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SUITE,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_javascript_client_suite(proxy: ServedProxy, opensearch_url: str,
                                     admin_token: str) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the JavaScript client suite"
    _install()
    env = {**os.environ, "CROSSRANK_URL": proxy.url, "OPENSEARCH_URL": opensearch_url,
           "CROSSRANK_ADMIN_TOKEN": admin_token}
    done = subprocess.run([node, "--test", "--test-reporter=spec", "client.test.mjs"],
                          cwd=SUITE, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "# fail 0" in done.stdout or "fail 0" in done.stdout, done.stdout[-2000:]
