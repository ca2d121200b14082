"""Loading BEIR collections: good ones load, bad ones name the file and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crossrank.eval.datasets import (
    DatasetError,
    load_dataset,
    load_qrels,
    read_corpus,
    scan_corpus,
)

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval_tiny"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    copy = tmp_path / "tiny"
    shutil.copytree(TINY, copy)
    return copy


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_tiny_fixture_loads(tiny: Path) -> None:
    ds = load_dataset(tiny)
    assert ds.name == "tiny"
    assert ds.corpus.count == 10
    # q4 has only a zero judgment: left out, and counted; q5 is not judged at all
    assert list(ds.judged.queries) == ["q1", "q2", "q3"]
    assert ds.judged.skipped_no_relevant == 1
    assert ds.judged.qrels["q1"] == {"d1": 0, "d2": 1, "d3": 2}
    assert ds.judged.queries["q2"] == "mefo"


def test_fingerprint_ignores_line_order_but_not_content(tiny: Path, tmp_path: Path) -> None:
    corpus = tiny / "corpus.jsonl"
    original = scan_corpus(corpus).fingerprint
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(reversed(corpus.read_text().splitlines())) + "\n")
    assert scan_corpus(shuffled).fingerprint == original
    _replace_line(shuffled, 1, '{"_id": "d10", "title": "Report ten", "text": "sulo rono"}')
    assert scan_corpus(shuffled).fingerprint != original


@pytest.mark.parametrize(("line", "text", "reason"), [
    (3, '{"_id": "d3", "title": "x", "text": "kalu', "not valid JSON"),
    (4, '["d4", "text"]', "expected a JSON object"),
    (5, '{"_id": "d5", "title": "x"}', "field 'text' is missing"),
    (6, '{"_id": "d6", "text": 7}', "field 'text' is not a string (int)"),
    (7, '{"_id": "d1", "text": "again"}', "duplicate document id 'd1'"),
    (8, '{"_id": "", "text": "no id"}', "field '_id' is empty"),
])
def test_bad_corpus_line_names_file_and_line(tiny: Path, line: int, text: str,
                                             reason: str) -> None:
    _replace_line(tiny / "corpus.jsonl", line, text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(tiny)
    assert caught.value.path == tiny / "corpus.jsonl"
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{tiny / 'corpus.jsonl'}, line {line}: ")
    assert reason in str(caught.value)


def test_bad_query_line(tiny: Path) -> None:
    _replace_line(tiny / "queries.jsonl", 2, '{"_id": "q2", "text": ["mefo"]}')
    with pytest.raises(DatasetError, match=r"queries\.jsonl, line 2: field 'text' is not a "):
        load_dataset(tiny)


@pytest.mark.parametrize(("line", "text", "reason"), [
    (3, "q1\td2\tyes", "score 'yes' is not an integer"),
    (4, "q1 d3 2", "expected 3 tab-separated columns"),
    (5, "q2\td5\t1", "were already judged on line 5"),
    (6, "q2\td66\t1", "document 'd66' (query 'q2') is not in the corpus"),
    (7, "q77\td7\t1", "query 'q77' is not in queries.jsonl"),
])
def test_bad_qrels_line(tiny: Path, line: int, text: str, reason: str) -> None:
    lines = (tiny / "qrels.tsv").read_text().splitlines()
    if "already judged" in reason:  # a duplicate of line 5, appended
        lines.append(text)
        line = len(lines)
    else:
        lines[line - 1] = text
    (tiny / "qrels.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(tiny)
    assert f"qrels.tsv, line {line}: " in str(caught.value)
    assert reason in str(caught.value)


def test_qrels_without_header_and_trec_style(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tsv"
    plain.write_text("q1\td2\t1\nq1\t0\td3\t2\n")
    assert load_qrels(plain) == [(1, "q1", "d2", 1), (2, "q1", "d3", 2)]


def test_missing_files(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(tmp_path / "nope")
    (tiny / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"queries\.jsonl: file not found"):
        load_dataset(tiny)


def test_other_qrels_file_and_no_relevant_judgment(tiny: Path) -> None:
    only_zero = tiny / "zero.tsv"
    only_zero.write_text("query-id\tcorpus-id\tscore\nq4\td9\t0\n")
    with pytest.raises(DatasetError, match="no query has a relevant"):
        load_dataset(tiny, only_zero)


def test_corpus_title_is_optional(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": 12, "text": "numeric id, no title"}\n\n')
    [doc] = list(read_corpus(corpus))
    assert (doc.id, doc.title, doc.text) == ("12", "", "numeric id, no title")
