"""Training data preparation: the claim split, inverse-cloze queries and listwise groups."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from crossrank.eval.datasets import Document
from crossrank.train.config import TrainConfig
from crossrank.train.data import find_scifact, load_scifact, load_wikiqa, sentences, split_queries
from crossrank.train.groups import (
    judged_groups,
    make_synthetic,
    synthetic_groups,
    wikiqa_groups,
    with_teacher,
)

CORPUS = {
    f"d{i}": Document(f"d{i}", f"Title number {i} about topic {i % 3}",
                      f"First sentence of {i}. Second one here. Third sentence now. "
                      f"Fourth sentence of the abstract number {i} is long. "
                      f"Fifth and final sentence of abstract {i} ends it.")
    for i in range(12)
}


def test_split_is_seeded_disjoint_and_complete() -> None:
    ids = [str(i) for i in range(100)]
    first = split_queries(ids, 0.2, seed=13)
    again = split_queries(list(reversed(ids)), 0.2, seed=13)
    other = split_queries(ids, 0.2, seed=14)
    assert first == again  # the order claims arrive in does not matter, the seed does
    assert first.validation != other.validation
    assert len(first.validation) == 20
    assert set(first.train).isdisjoint(first.validation)
    assert sorted(first.train + first.validation, key=int) == ids


def test_split_rejects_a_fraction_outside_zero_one() -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        split_queries(["1", "2"], 1.0, seed=1)


def test_sentences_split_on_sentence_ends_only() -> None:
    text = "Levels rose 2.5-fold (p < 0.05). The effect held in mice. e.g. not a split"
    # a decimal point and a lower-case continuation are no sentence ends
    assert sentences(text) == ["Levels rose 2.5-fold (p < 0.05).",
                               "The effect held in mice. e.g. not a split"]


def _write_scifact(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_bytes(b"\n".join(
        orjson.dumps({"_id": d.id, "title": d.title, "text": d.text}) for d in
        CORPUS.values()))
    (root / "queries.jsonl").write_bytes(b"\n".join(
        orjson.dumps({"_id": q, "text": f"claim {q}"}) for q in ("1", "2", "3")))
    (root / "qrels_train.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t1\n"
                                          "2\td3\t1\n3\td4\t0\n")
    (root / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n9\td5\t1\n")


def test_load_scifact_reads_train_judgments_only(tmp_path: Path) -> None:
    root = tmp_path / "repo" / "datasets" / "scifact"
    _write_scifact(root)
    assert find_scifact(tmp_path / "repo") == root
    data = load_scifact(root)
    # claim 3 has no relevant judgment and the test judgments (qrels.tsv) are never read
    assert data.qrels == {"1": {"d1", "d2"}, "2": {"d3"}}
    assert set(data.claims) == {"1", "2"}
    assert len(data.corpus) == 12


def test_find_scifact_falls_back_to_the_shared_copy(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "datasets" / "scifact"
    _write_scifact(shared)
    (tmp_path / "repo").mkdir()
    assert find_scifact(tmp_path / "repo") == shared


def test_wikiqa_keeps_questions_with_a_right_and_a_wrong_answer(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [("a", "q a", "s1", 1), ("a", "q a", "s2", 0), ("b", "q b", "s3", 0),
            ("c", "q c", "s4", 1)]
    path.write_bytes(b"\n".join(orjson.dumps({"qid": q, "query": t, "passage": p, "label": y})
                                for q, t, p, y in rows))
    [question] = load_wikiqa(path)
    assert (question.question, question.positives, question.negatives) == ("q a", ["s1"],
                                                                            ["s2"])


def _text(doc_id: str) -> str:
    return f"{CORPUS[doc_id].title}. {CORPUS[doc_id].text}"


TEXTS = {doc_id: _text(doc_id) for doc_id in CORPUS}


def test_judged_groups_put_the_positive_first_and_never_a_relevant_negative() -> None:
    qrels = {"1": {"d1": 2, "d2": 1, "d6": 0}}
    ranked = {"1": ["d2", "d5", "d1", "d6", "d7", "d8"]}
    groups = judged_groups({"1": "claim one"}, qrels, ranked, TEXTS, negatives=3, top=4,
                           epochs=2, max_length=64, rng=random.Random(1))
    assert len(groups) == 4  # two relevant documents (any grade above 0), two epochs
    for group in groups:
        assert group.docs[0] in {TEXTS["d1"], TEXTS["d2"]}
        assert len(group.docs) == 4 and group.teacher is None
        negatives = group.docs[1:]
        # d5 and the judged non-relevant d6 are the only others in the top 4: one random fill
        assert {TEXTS["d5"], TEXTS["d6"]} <= set(negatives)
        assert TEXTS["d1"] not in negatives and TEXTS["d2"] not in negatives


def test_judged_groups_skip_a_relevant_document_the_index_lacks() -> None:
    texts = {d: t for d, t in TEXTS.items() if d != "d1"}
    groups = judged_groups({"1": "q"}, {"1": {"d1": 1, "d2": 1}}, {"1": ["d3", "d4"]}, texts,
                           negatives=2, top=10, epochs=1, max_length=64, rng=random.Random(0))
    assert [g.docs[0] for g in groups] == [TEXTS["d2"]]


def test_the_teacher_scores_every_pair_in_group_order() -> None:
    groups = judged_groups({"1": "q"}, {"1": {"d1": 1}}, {"1": ["d2", "d3"]}, TEXTS,
                           negatives=2, top=10, epochs=1, max_length=64, rng=random.Random(0))
    seen: list[tuple[str, str]] = []

    def teacher(pairs: Sequence[tuple[str, str]]) -> list[float]:
        seen.extend(pairs)
        return [float(len(doc)) for _, doc in pairs]

    [group] = with_teacher(groups, teacher)
    assert seen == [("q", doc) for doc in group.docs]
    assert group.teacher == tuple(float(len(doc)) for doc in group.docs)


def test_title_queries_never_see_their_own_title() -> None:
    made = make_synthetic(CORPUS, title_count=3, sentence_count=3, seed=5)
    assert [q.kind for q in made].count("title") == 3
    assert [q.kind for q in made].count("sentence") == 3
    ranked = {q.key: sorted(CORPUS) for q in made}
    groups = synthetic_groups(made, ranked, CORPUS, template="{title}. {text}",
                              negatives=4, top=10, max_length=64, rng=random.Random(2))
    for query, group in zip(made, groups, strict=True):
        assert group.docs[0] == query.positive
        if query.kind == "title":
            assert all(query.query not in doc for doc in group.docs)
        else:
            assert query.query not in group.docs[0]
            assert query.query in CORPUS[query.doc_id].text


def test_wikiqa_groups_are_bounded_by_the_candidates_there_are() -> None:
    from crossrank.train.data import WikiQAQuestion

    questions = [WikiQAQuestion("q1", ["yes"], ["no1", "no2"]),
                 WikiQAQuestion("q2", ["yes2"], [f"n{i}" for i in range(10)])]
    groups = wikiqa_groups(questions, negatives=7, count=5, max_length=32,
                           rng=random.Random(0))
    assert sorted(len(g.docs) for g in groups) == [3, 8]
    assert all(g.docs[0].startswith("yes") for g in groups)


def test_config_round_trips_through_the_manifest_dict() -> None:
    config = TrainConfig(seed=7, eval_at=(0.25, 1.0))
    data = orjson.loads(orjson.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"sed": 1})
