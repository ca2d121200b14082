"""The shortcut for reranker-only collections: no index, no retrieval.

Some collections judge a fixed candidate set per query, relevant and not (WikiQA-style: every
candidate sentence is judged 0 or 1). For those, each query's judged candidates are sent to
``POST /_crossrank/rerank`` exactly, and the answer's order is the ranking. One run per model,
plus ``listed-order``, the candidates in the order the qrels file lists them, which costs no
request and shows what the reranker adds over the collection's own order.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from crossrank.eval.arms import Arm
from crossrank.eval.datasets import DatasetError, Document, Judged, load_documents
from crossrank.eval.proxy_client import EvalError, ProxyClient
from crossrank.eval.runner import ArmRun

LISTED_ORDER = Arm("listed-order", {}, rerank=False,
                   description="the judged candidates in the order the qrels file lists them")


def document_text(doc: Document, template: str) -> str:
    """The text the model scores, from the same kind of template a policy uses."""
    values = {"title": doc.title, "text": doc.text, "_id": doc.id}
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    if names - set(values):
        raise EvalError(f"template {template!r} may only name {{title}}, {{text}} or {{_id}}")
    # rendered like a policy's template: a missing title is an empty string, as in the proxy
    return template.format(**values)


def rerank_arm(model: str) -> Arm:
    return Arm(f"rerank:{model}", {}, rerank=True, baseline=LISTED_ORDER.name,
               description=f"the judged candidates reranked by model {model!r}")


def run_rerank_only(client: ProxyClient, judged: Judged, corpus_path: Path,
                    models: Sequence[str], *, template: str = "{title}. {text}",
                    warmup: int = 3, progress: bool = True) -> list[ArmRun]:
    wanted = {doc_id for docs in judged.qrels.values() for doc_id in docs}
    documents = load_documents(corpus_path, wanted)
    missing = wanted - documents.keys()
    if missing:  # load_dataset checks this too; the shortcut may be handed a bare Judged
        raise DatasetError(corpus_path, None, f"{len(missing)} judged documents are missing, "
                           f"e.g. {sorted(missing)[:3]}")
    listed = ArmRun(LISTED_ORDER, None)
    runs = [listed] + [ArmRun(rerank_arm(model), None) for model in models]
    payloads: dict[str, list[dict[str, str]]] = {}
    for qid, judgments in judged.qrels.items():
        listed.ranked[qid] = list(judgments)
        payloads[qid] = [{"id": doc_id, "text": document_text(documents[doc_id], template)}
                         for doc_id in judgments]
    qids = list(judged.queries)
    bar: Any = tqdm(total=len(qids) * len(models), unit="query", desc="reranking",
                    disable=not progress, file=sys.stderr, dynamic_ncols=True)
    with bar:
        for run, model in zip(runs[1:], models, strict=True):
            for qid in qids[:warmup]:
                client.rerank(judged.queries[qid], payloads[qid], model)
            for qid in qids:
                answer = client.rerank(judged.queries[qid], payloads[qid], model)
                results = answer.body.get("results", [])
                run.ranked[qid] = [payloads[qid][int(item["index"])]["id"] for item in results]
                if len(run.ranked[qid]) != len(payloads[qid]):
                    raise EvalError(f"the rerank endpoint returned {len(results)} results for "
                                    f"{len(payloads[qid])} documents (query {qid!r})")
                run.latencies_ms.append(answer.elapsed_ms)
                run.statuses["reranked"] += 1
                bar.update(1)
    return runs
