"""The `crossrank eval` command's surface: options, and errors a user can act on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crossrank.eval.command import eval_command
from crossrank.eval.options import EvalOptions

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval_tiny"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)

    @app.command("other")
    def other() -> None:  # a second command, so "eval" is a subcommand as in crossrank's CLI
        """Unused."""

    return app


def test_help_lists_the_options(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--dataset", "--qrels", "--arms", "--window", "--index", "--out",
                   "--proxy", "--rerank-only", "--reindex", "--no-policy"):
        assert option in result.output


def test_bad_dataset_line_is_reported_with_file_and_line(cli: typer.Typer,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(TINY, data)
    qrels = data / "qrels.tsv"
    qrels.write_text(qrels.read_text() + "q3\tmissing-doc\t1\n")
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(data), "--no-progress"])
    assert result.exit_code == 1
    assert (f"error: {qrels}, line 9: document 'missing-doc' (query 'q3') is not in the corpus"
            in result.output)


@pytest.mark.parametrize("window", ["10,x", "0", ","])
def test_bad_window_is_a_usage_error(cli: typer.Typer, window: str) -> None:
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(TINY), "--window", window])
    assert result.exit_code == 2


def test_unknown_arm_is_reported(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(TINY), "--arms", "bm25,nope",
                                      "--proxy", "http://127.0.0.1:9", "--no-progress"])
    assert result.exit_code == 1
    assert "unknown arm(s) nope" in result.output


def test_reproduce_line_and_defaults(tmp_path: Path) -> None:
    options = EvalOptions(dataset=Path("datasets/scifact"), windows=(20, 50), limit=10)
    assert options.command_line() == (
        "crossrank eval --dataset datasets/scifact --arms bm25,bm25+rerank --window 20,50 "
        "--size 100 --analyzer english --model default --limit 10")
    reranker = EvalOptions(dataset=tmp_path, rerank_only=True, models=("a", "b"))
    assert "--rerank-only --model a,b" in reranker.command_line()
