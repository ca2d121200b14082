"""`crossrank opensearch` flags: versions and cluster sizes map onto DevNode and DevCluster.

Starting real nodes and clusters is tested in tests/integration; these check the flags' own
answers, which need no node running.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crossrank.cli import app
from crossrank.devnode import DISTRIBUTIONS, DevCluster

runner = CliRunner()


def test_an_unknown_version_names_the_known_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["opensearch", "status", "--version", "9.9.9",
                                 "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "no recipe for OpenSearch '9.9.9'" in result.output
    assert all(version in result.output for version in DISTRIBUTIONS)


def test_status_of_a_cluster_lists_every_node(tmp_path: Path) -> None:
    port = 1  # nothing answers on ports 1-3 of loopback
    result = runner.invoke(app, ["opensearch", "status", "--nodes", "3", "--port", str(port),
                                 "--home", str(tmp_path), "--version", "3.5.0"])
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if "not running" in line] == [
        f"OpenSearch is not running at http://127.0.0.1:{port + i}" for i in range(3)]


def test_a_cluster_is_one_cluster_on_distinct_ports(tmp_path: Path) -> None:
    nodes = DevCluster(home=tmp_path, port=9400, size=3, version="3.5.0").nodes
    settings = [node.settings() for node in nodes]
    assert [s["http.port"] for s in settings] == [9400, 9401, 9402]
    assert [s["transport.port"] for s in settings] == [9500, 9501, 9502]
    assert {s["cluster.name"] for s in settings} == {"crossrank-dev"}
    assert len({s["path.data"] for s in settings}) == 3
    assert all(s["discovery.seed_hosts"] == ["127.0.0.1:9500", "127.0.0.1:9501",
                                             "127.0.0.1:9502"] for s in settings)
    assert all("discovery.type" not in s for s in settings)
    assert {node.heap for node in nodes} == {"512m"}
