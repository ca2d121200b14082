"""Test fixtures shared by every suite.

The integration suites talk to a real OpenSearch node: the session starts one (built from
Maven Central by `crossrank opensearch`) of the version CROSSRANK_TEST_OPENSEARCH_VERSION
names (default 2.19.1; `make test-matrix` runs the integration suite on 3.5.0 too), or reuses
the node named by CROSSRANK_TEST_OPENSEARCH_URL. Nothing here imitates OpenSearch.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from crossrank.devnode import DISTRIBUTIONS, OPENSEARCH_VERSION, DevNode, NodeError

pytest_plugins = ["model_fixtures", "proxy_fixtures"]

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Graphs quantised at load (int8_on_load) go to a cache of this run's own, not ~/.cache.
    if "CROSSRANK_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["CROSSRANK_CACHE_DIR"] = tempfile.mkdtemp(prefix="crossrank-test-cache-")


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's capture, so the node's version shows in every test run."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def opensearch_url(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("CROSSRANK_TEST_OPENSEARCH_URL")
    if given:
        client = OpenSearch(given)
        version = client.info()["version"]["number"]
        _say(request, f"\nreusing OpenSearch {version} at {given}")
        yield given.rstrip("/")
        return
    version = os.environ.get("CROSSRANK_TEST_OPENSEARCH_VERSION", OPENSEARCH_VERSION)
    if version not in DISTRIBUTIONS:
        pytest.fail(f"CROSSRANK_TEST_OPENSEARCH_VERSION={version!r}: crossrank has recipes for "
                    f"{', '.join(DISTRIBUTIONS)}", pytrace=False)
    node = DevNode(home=tmp_path_factory.mktemp("opensearch"), port=_free_port(), heap="1g",
                   version=version)
    try:
        status, _ = node.start(timeout_s=240)
    except NodeError as exc:
        pytest.fail(f"could not start the OpenSearch test node: {exc}", pytrace=False)
    _say(request, f"\nstarted OpenSearch {status.version} at {status.url} (home {node.home})")
    try:
        yield status.url
    finally:
        if request.session.testsfailed:
            _say(request, "--- OpenSearch node log (tail) ---\n" + node.log_tail(40))
        node.stop()


@pytest.fixture(scope="session")
def os_client(opensearch_url: str) -> OpenSearch:
    return OpenSearch(opensearch_url, timeout=60)


@pytest.fixture(scope="session")
def opensearch_version(os_client: OpenSearch) -> str:
    return str(os_client.info()["version"]["number"])


@pytest.fixture(scope="session")
def native_hybrid(os_client: OpenSearch, opensearch_version: str) -> None:
    """Skip unless the node has the neural-search plugin (OpenSearch's own `hybrid` query and
    its normalization/RRF search pipelines). Maven Central serves it for 2.x, not for 3.x."""
    plugins = {row["component"] for row in os_client.cat.plugins(format="json")}
    if not any("neuralsearch" in name.lower() or "neural-search" in name for name in plugins):
        pytest.skip(f"OpenSearch {opensearch_version} here has no neural-search plugin (not on "
                    "Maven Central for 3.x), so no native hybrid query; proxy-side hybrid "
                    "is tested instead")


@pytest.fixture
def index_name(request: pytest.FixtureRequest, os_client: OpenSearch) -> Iterator[str]:
    """A fresh index name per test, deleted (with anything matching it) afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    yield name
    os_client.indices.delete(index=f"{name}*", ignore_unavailable=True, allow_no_indices=True)
