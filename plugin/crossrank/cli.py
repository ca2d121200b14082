"""The `crossrank` command line: one place that maps flags onto the library."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crossrank.devnode import DevNode, NodeError
from crossrank.devnode.node import default_home

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Cross-encoder reranking proxy for OpenSearch.")
opensearch_app = typer.Typer(no_args_is_help=True,
                             help="Run a real OpenSearch 2.19.1 node for development and tests.")
app.add_typer(opensearch_app, name="opensearch")

PortOpt = Annotated[int, typer.Option("--port", help="HTTP port of the node.")]
HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Node home (data, logs, pid). Default: $CROSSRANK_OPENSEARCH_HOME "
                   "or ./.crossrank/opensearch")]


def _node(home: Path | None, port: int, heap: str = "1g") -> DevNode:
    return DevNode(home=(home or default_home()).resolve(), port=port, heap=heap)


@opensearch_app.command("start")
def opensearch_start(
    port: PortOpt = 9200,
    home: HomeOpt = None,
    heap: Annotated[str, typer.Option(help="JVM heap, e.g. 512m, 1g.")] = "1g",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node.")] = 180.0,
) -> None:
    """Build (first time) and start the node; wait until it answers; print its URL."""
    node = _node(home, port, heap)
    began = time.monotonic()
    try:
        if not node.is_built():
            typer.echo(f"Assembling OpenSearch from Maven Central into {node.build_dir} ...")
        status, started = node.start(timeout_s=timeout)
    except NodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if started:
        typer.echo(f"OpenSearch {status.version} started in {time.monotonic() - began:.1f} s")
    else:
        typer.echo("already running: " + status.describe())
    typer.echo(status.url)


@opensearch_app.command("stop")
def opensearch_stop(port: PortOpt = 9200, home: HomeOpt = None) -> None:
    """Stop the node started from this home directory."""
    node = _node(home, port)
    if node.stop():
        typer.echo(f"stopped OpenSearch at {node.url}")
    else:
        typer.echo(f"no OpenSearch started from {node.home} is running")


@opensearch_app.command("status")
def opensearch_status(port: PortOpt = 9200, home: HomeOpt = None) -> None:
    """Say whether the node answers; exit 1 when it does not."""
    status = _node(home, port).status()
    typer.echo(status.describe())
    if not status.answering:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
