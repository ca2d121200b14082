"""Real text for parity checks: SciFact claims and abstracts when a copy is found, else a
small built-in set of real sentences (so an export never depends on a dataset)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossrank.models.manifest import shown_path

_SCIFACT_DIRS = (
    Path(__file__).resolve().parents[3] / "datasets" / "scifact",
    Path.cwd() / "datasets" / "scifact",
    Path(__file__).resolve().parents[4] / "shared" / "datasets" / "scifact",  # beside the repo
    Path("/work/shared/datasets/scifact"),
)

BUILTIN_QUERIES = (
    "Vitamin D deficiency is associated with a higher risk of bone fractures.",
    "Regular aerobic exercise lowers resting blood pressure.",
    "Antibiotics are ineffective against viral infections such as the common cold.",
)
BUILTIN_PASSAGES = (
    "Vitamin D helps the body absorb calcium, which is needed to build and keep strong bones.",
    "Low blood levels of vitamin D were linked to more hip fractures in older adults.",
    "Sunlight on the skin starts the body's own production of vitamin D.",
    "Osteoporosis makes bones thin and brittle, so that a minor fall can break them.",
    "Calcium and vitamin D supplements reduced fractures in some trials but not in others.",
    "Fatty fish such as salmon and mackerel are among the few foods rich in vitamin D.",
    "Walking briskly for thirty minutes on most days is a form of aerobic exercise.",
    "High blood pressure raises the risk of heart attack and stroke.",
    "In a meta-analysis, endurance training reduced systolic blood pressure by several mmHg.",
    "Reducing salt intake can lower blood pressure in people with hypertension.",
    "Resistance training increases muscle strength and bone density.",
    "The heart pumps about five litres of blood per minute at rest.",
    "Antibiotics kill bacteria or stop them from multiplying.",
    "The common cold is caused by viruses, most often rhinoviruses.",
    "Overuse of antibiotics drives the spread of antibiotic-resistant bacteria.",
    "Penicillin was discovered by Alexander Fleming in 1928.",
    "Influenza vaccines are updated each year to match the circulating strains.",
    "Viruses replicate inside the cells of their host.",
    "Hand washing with soap reduces the spread of respiratory infections.",
    "Bacterial pneumonia is usually treated with antibiotics.",
    "The human genome contains about three billion base pairs.",
    "Insulin is produced by the beta cells of the pancreas.",
    "Type 2 diabetes is associated with obesity and physical inactivity.",
    "Smoking is the leading cause of lung cancer.",
    "Red blood cells carry oxygen from the lungs to the tissues.",
    "Sleep deprivation impairs memory and attention.",
    "The blood-brain barrier limits which molecules can reach the brain.",
    "Mitochondria produce most of the cell's supply of ATP.",
    "Chronic inflammation contributes to the development of atherosclerosis.",
    "Folic acid taken before pregnancy lowers the risk of neural tube defects.",
    "Measles is one of the most contagious infectious diseases.",
    "Statins lower the level of LDL cholesterol in the blood.",
    "Aspirin inhibits the enzyme cyclooxygenase.",
    "The liver breaks down many drugs and toxins.",
    "Anemia is a shortage of red blood cells or haemoglobin.",
    "Dietary fibre helps to keep bowel movements regular.",
    "Malaria is transmitted by the bite of infected Anopheles mosquitoes.",
    "Stem cells can develop into many different cell types.",
    "Alzheimer's disease is the most common cause of dementia.",
    "The kidneys filter waste products out of the blood.",
    "Ultraviolet radiation from the sun can damage the DNA of skin cells.",
    "Iron deficiency is the most common nutritional deficiency in the world.",
    "Vaccination programmes eradicated smallpox in 1980.",
    "Cortisol is released in response to stress.",
    "The thyroid gland regulates the body's metabolic rate.",
    "Asthma causes the airways to narrow and swell.",
    "HIV attacks the CD4 cells of the immune system.",
    "Caffeine blocks adenosine receptors in the brain.",
    "Obesity increases the risk of several kinds of cancer.",
    "The appendix is a small pouch attached to the large intestine.",
)


@dataclass(frozen=True)
class PairSample:
    """Queries, each with the same number of candidate documents."""

    data: str
    queries: list[str]
    candidates: list[list[str]]


def scifact_dir() -> Path | None:
    for directory in _SCIFACT_DIRS:
        if (directory / "queries.jsonl").is_file() and (directory / "corpus.jsonl").is_file():
            return directory
    return None


def pair_sample(queries: int = 3, candidates: int = 50, seed: int = 0) -> PairSample:
    """``queries`` judged SciFact training claims, each with its relevant abstracts plus random
    others up to ``candidates`` documents; the built-in sentences when no SciFact copy is
    found."""
    directory = scifact_dir()
    if directory is None:
        passages = list(BUILTIN_PASSAGES[:candidates])
        chosen = list(BUILTIN_QUERIES[:queries])
        return PairSample("builtin", chosen, [passages for _ in chosen])
    claims, corpus = _read_queries(directory), _read_corpus(directory)
    relevant: dict[str, list[str]] = {}
    # training claims: the test judgments (qrels.tsv) stay untouched until a model's final
    # measurement, even by export-time parity checks
    qrels = directory / "qrels_train.tsv"
    if not qrels.is_file():
        qrels = directory / "qrels.tsv"
    for line in qrels.read_text(encoding="utf-8").splitlines()[1:]:
        query_id, doc_id, *_ = line.split("\t")
        if query_id in claims and doc_id in corpus:
            relevant.setdefault(query_id, []).append(doc_id)
    rng = np.random.default_rng(seed)
    doc_ids = sorted(corpus)
    chosen_queries, chosen_docs = [], []
    for query_id in list(relevant)[:queries]:
        docs = relevant[query_id][:candidates]
        others = [doc_ids[i] for i in rng.permutation(len(doc_ids)) if doc_ids[i] not in docs]
        docs += others[: candidates - len(docs)]
        chosen_queries.append(claims[query_id])
        chosen_docs.append([corpus[doc_id] for doc_id in docs])
    return PairSample(f"scifact:{shown_path(directory)}", chosen_queries, chosen_docs)


def text_sample(count: int = 64) -> tuple[str, list[str]]:
    """Real text for embedder parity: half SciFact claims, half abstracts (or built-ins)."""
    directory = scifact_dir()
    if directory is None:
        return "builtin", [*BUILTIN_QUERIES, *BUILTIN_PASSAGES][:count]
    claims = list(_read_queries(directory).values())[: count // 2]
    documents = list(_read_corpus(directory).values())[: count - len(claims)]
    return f"scifact:{shown_path(directory)}", claims + documents


def _read_queries(directory: Path) -> dict[str, str]:
    rows = (json.loads(line) for line in
            (directory / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line)
    return {str(row["_id"]): str(row["text"]) for row in rows}


def _read_corpus(directory: Path) -> dict[str, str]:
    rows = (json.loads(line) for line in
            (directory / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line)
    return {str(row["_id"]): join_title(str(row.get("title") or ""), str(row.get("text") or ""))
            for row in rows}


def join_title(title: str, text: str) -> str:
    """``"{title}. {text}"``, without doubling a title's own final punctuation."""
    title = title.strip()
    if title and not title.endswith((".", "?", "!")):
        title += "."
    return f"{title} {text.strip()}".strip()
