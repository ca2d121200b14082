"""The `crossrank` command line: one place that maps flags onto the library."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crossrank.devnode import DISTRIBUTIONS, OPENSEARCH_VERSION, DevCluster, DevNode, NodeError
from crossrank.devnode.node import default_home
from crossrank.eval.command import eval_command
from crossrank.train.command import finetune_command, train_command
from crossrank.tune.command import tune_command

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Cross-encoder reranking proxy for OpenSearch.")
opensearch_app = typer.Typer(no_args_is_help=True,
                             help="Run real OpenSearch nodes (2.19.1 or 3.5.0, one or a "
                                  "cluster) for development and tests.")
app.add_typer(opensearch_app, name="opensearch")

PortOpt = Annotated[int, typer.Option(
    "--port", help="HTTP port of the node (of the first node; node i listens on port + i).")]
HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Node home (data, logs, pid); a cluster's nodes live in HOME/node-i. "
                   "Default: $CROSSRANK_OPENSEARCH_HOME or ./.crossrank/opensearch")]
VersionOpt = Annotated[str, typer.Option(
    "--version", help=f"OpenSearch version: {', '.join(DISTRIBUTIONS)}.")]
NodesOpt = Annotated[int, typer.Option(
    "--nodes", min=1, help="1: a single node; N > 1: a cluster of N nodes on loopback.")]


def _nodes(home: Path | None, port: int, version: str, nodes: int,
           heap: str | None = None) -> DevNode | DevCluster:
    """The node, or the cluster, these flags name; an unknown version exits with the list."""
    if version not in DISTRIBUTIONS:
        typer.echo(f"error: no recipe for OpenSearch {version!r}; "
                   f"known: {', '.join(DISTRIBUTIONS)}", err=True)
        raise typer.Exit(2)
    root = (home or default_home()).resolve()
    if nodes == 1:
        return DevNode(home=root, port=port, heap=heap or "1g", version=version)
    return DevCluster(home=root, port=port, size=nodes, heap=heap or "512m", version=version)


def _members(target: DevNode | DevCluster) -> list[DevNode]:
    return target.nodes if isinstance(target, DevCluster) else [target]


@opensearch_app.command("build")
def opensearch_build(version: VersionOpt = OPENSEARCH_VERSION) -> None:
    """Fetch OpenSearch and its plugins from Maven Central and compile the launcher."""
    node = _members(_nodes(None, 9200, version, 1))[0]
    began = time.monotonic()
    try:
        node.build(quiet=False)
    except NodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"OpenSearch {version} ready in {node.build_path} "
               f"({time.monotonic() - began:.1f} s)")


@opensearch_app.command("start")
def opensearch_start(
    port: PortOpt = 9200,
    home: HomeOpt = None,
    version: VersionOpt = OPENSEARCH_VERSION,
    nodes: NodesOpt = 1,
    heap: Annotated[str | None, typer.Option(
        help="JVM heap per node, e.g. 512m, 1g (default 1g; 512m per node of a cluster).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node(s).")] = 240.0,
) -> None:
    """Build (first time) and start the node or cluster; wait until it answers; print URLs."""
    target = _nodes(home, port, version, nodes, heap)
    first = _members(target)[0]
    began = time.monotonic()
    try:
        if not first.is_built():
            typer.echo(f"Assembling OpenSearch {version} from Maven Central into "
                       f"{first.build_path} ...")
        if isinstance(target, DevCluster):
            already = all(node.status().answering for node in target.nodes)
            statuses = target.start(timeout_s=timeout)
            started = not already
        else:
            status, started = target.start(timeout_s=timeout)
            statuses = [status]
    except NodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if started:
        typer.echo(f"OpenSearch {statuses[0].version} started in "
                   f"{time.monotonic() - began:.1f} s ({len(statuses)} node(s))")
    else:
        typer.echo("already running: " + "; ".join(s.describe() for s in statuses))
    typer.echo(",".join(status.url for status in statuses))


@opensearch_app.command("stop")
def opensearch_stop(port: PortOpt = 9200, home: HomeOpt = None,
                    version: VersionOpt = OPENSEARCH_VERSION, nodes: NodesOpt = 1) -> None:
    """Stop the node (or the cluster's nodes) started from this home directory."""
    for node in _members(_nodes(home, port, version, nodes)):
        if node.stop():
            typer.echo(f"stopped OpenSearch at {node.url}")
        else:
            typer.echo(f"no OpenSearch started from {node.home} is running")


@opensearch_app.command("status")
def opensearch_status(port: PortOpt = 9200, home: HomeOpt = None,
                      version: VersionOpt = OPENSEARCH_VERSION, nodes: NodesOpt = 1) -> None:
    """Say whether the node(s) answer; exit 1 when one does not."""
    statuses = [node.status() for node in _members(_nodes(home, port, version, nodes))]
    for status in statuses:
        typer.echo(status.describe())
    if not all(status.answering for status in statuses):
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    config: Annotated[Path | None, typer.Option(help="Settings file (YAML).")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    upstream: Annotated[str | None, typer.Option(help="OpenSearch URL.")] = None,
    models_dir: Annotated[Path | None, typer.Option(
        help="Exported models (default: $CROSSRANK_MODELS_DIR or onnx_models).")] = None,
    admin_token: Annotated[str | None, typer.Option(
        envvar="CROSSRANK_ADMIN_TOKEN", help="Token for /_crossrank admin calls.")] = None,
    insecure_admin: Annotated[bool, typer.Option(
        "--insecure-admin", help="Development only: admin calls without a token.")] = False,
    no_admin: Annotated[bool, typer.Option(
        "--no-admin", help="Read-only proxy: no policy or mapping changes over HTTP.")] = False,
) -> None:
    """Run the proxy in front of OpenSearch."""
    from pydantic import ValidationError

    from crossrank.config import Settings
    from crossrank.server import serve

    try:
        settings = Settings.from_sources(config, host=host, port=port)
        changes: dict[str, object] = {}
        if upstream:
            changes["upstream"] = settings.upstream.model_copy(update={"url": upstream})
        if admin_token or insecure_admin or no_admin:
            changes["admin"] = {**settings.admin.model_dump(),
                                "token": admin_token or settings.admin.token,
                                "insecure_no_token": insecure_admin or
                                settings.admin.insecure_no_token,
                                "enabled": settings.admin.enabled and not no_admin}
        settings = Settings.model_validate({**settings.model_dump(), **changes})
    except (ValidationError, ValueError, OSError) as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    problem = settings.admin.startup_problem()
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if settings.admin.insecure_no_token and settings.admin.token is None:
        typer.echo("warning: --insecure-admin: anyone who reaches this port can change "
                   "policies (development only)", err=True)
    serve(settings, models_dir)


@app.command("export")
def export_command(
    model: Annotated[str, typer.Argument(
        help="A local Hugging Face model directory (the hub is not reachable from here).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory, e.g. onnx_models/NAME.")],
    kind: Annotated[str | None, typer.Option(
        help="cross-encoder or embedder (default: inferred from the model).")] = None,
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic int8 quantisation.")] = None,
    optimize: Annotated[str | None, typer.Option(help="Graph optimisation: O1, O2 or O3.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Maximum tokens per pair/text.")] = None,
    label: Annotated[int | None, typer.Option(
        help="Which logit is relevance, for classifiers with more than two labels.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a different model in --out.")] = False,
    trim_last_layer: Annotated[bool, typer.Option(
        help="Cross-encoders: the last layer computes only the row the head reads "
             "(same scores, fewer FLOPs). Not done with --optimize.")] = True,
    int8_keep_fp32: Annotated[list[str] | None, typer.Option(
        "--int8-keep-fp32",
        help="With --quantize int8: leave MatMul nodes whose names contain this in fp32, for "
             "accuracy (repeatable), e.g. layer.0/output/dense/.")] = None,
    int8_isa: Annotated[str | None, typer.Option(
        help="With --quantize int8: the CPU instruction set to quantise for (avx512_vnni, "
             "avx512, avx2, arm64; default: this machine's).")] = None,
    int8_on_load: Annotated[bool, typer.Option(
        "--int8-on-load",
        help="With --quantize int8: ship the float graph (weights stored fp16) and quantise "
             "it for each machine's own CPU when it is first loaded (cached).")] = False,
) -> None:
    """Export a Hugging Face cross-encoder or sentence-transformers embedder to ONNX."""
    try:
        from crossrank.models.errors import ExportError
        from crossrank.models.export import export_model
    except ImportError as exc:  # the export extra is not installed
        typer.echo(f"error: {exc}; install the export extra: pip install 'crossrank[export]'",
                   err=True)
        raise typer.Exit(2) from exc
    try:
        manifest = export_model(model, out, kind=kind, quantize=quantize,  # type: ignore[arg-type]
                                optimize=optimize, max_length=max_length,  # type: ignore[arg-type]
                                label=label, force=force, trim_last_layer=trim_last_layer,
                                int8_keep_fp32=int8_keep_fp32 or (), int8_isa=int8_isa,
                                int8_on_load=int8_on_load)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"exported {manifest.kind} to {out}")
    typer.echo(manifest.model_dump_json(indent=2, include={
        "parity", "quantization", "int8_on_load", "max_length", "last_layer_rows"}))


@app.command("trim")
def trim_command(
    model_dir: Annotated[Path, typer.Argument(help="An exported cross-encoder directory.")],
) -> None:
    """Cut an exported cross-encoder's last layer to the row its head reads, in place.

    For models exported before crossrank did this itself: the same scores (fp32) or nearly
    (int8), checked on sample pairs before the graph is replaced.
    """
    from crossrank.models.errors import ManifestError
    from crossrank.models.trim import trim_model_dir  # onnx is imported (or missed) inside

    try:
        report = trim_model_dir(model_dir)
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"trimmed {model_dir}: {report.pairs} sample pairs, max |diff| "
               f"{report.max_abs_diff:.2e}, Spearman {report.spearman:.4f}, top-10 overlap "
               f"{report.top10_overlap:.2f} against the full graph")


@app.command("calibrate")
def calibrate_command(
    model_dir: Annotated[Path, typer.Argument(
        help="A cross-encoder directory exported with --int8-on-load.")],
) -> None:
    """Measure the activation maxima int8 smoothing needs, for a model exported before crossrank
    did this itself.

    Writes calibration.json beside the graph (from SciFact training pairs where a copy is found,
    else built-in sentences) and names it in the manifest; the graph itself is unchanged.
    """
    from crossrank.models.errors import ManifestError
    from crossrank.models.local_int8 import calibrate_model_dir

    try:
        calibration = calibrate_model_dir(model_dir)
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"calibrated {model_dir}: {len(calibration.maxima)} product inputs over "
               f"{calibration.pairs} pairs ({calibration.data}) at {calibration.max_length} "
               "tokens")


@app.command("front-config")
def front_config_command(
    kind: Annotated[str, typer.Argument(help="The front proxy: nginx.")] = "nginx",
    listen: Annotated[str, typer.Option(help="Where the front proxy listens.")] = "9200",
    crossrank: Annotated[list[str] | None, typer.Option(
        help="host:port of a crossrank replica (repeat for several; default "
             "127.0.0.1:8080).")] = None,
    opensearch: Annotated[list[str] | None, typer.Option(
        help="host:port of an OpenSearch node (repeat for several; default "
             "127.0.0.1:9201).")] = None,
) -> None:
    """Print a front proxy's configuration that sends only the routes crossrank acts on to it.

    Generated from the proxy's own route table: searches, _bulk and the document writes, and
    /_crossrank/ go to crossrank; everything else goes straight to OpenSearch.
    """
    from crossrank.proxy.front import FrontTargets, render_nginx

    if kind != "nginx":
        typer.echo(f"error: unknown front proxy {kind!r}; supported: nginx", err=True)
        raise typer.Exit(2)
    targets = FrontTargets(listen, tuple(crossrank or ["127.0.0.1:8080"]),
                           tuple(opensearch or ["127.0.0.1:9201"]))
    typer.echo(render_nginx(targets), nl=False)


app.command("eval")(eval_command)
app.command("tune")(tune_command)
app.command("train")(train_command)
app.command("finetune")(finetune_command)


if __name__ == "__main__":
    app()
