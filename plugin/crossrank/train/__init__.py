"""Training the embedded default cross-encoder (the ``train`` extra: torch + transformers).

The data path, one module each:

    data.py      SciFact (train judgments only) and WikiQA readers, the train/validation split
    mining.py    BM25 candidates from a real OpenSearch node (hard negatives, validation windows)
    teacher.py   the all-MiniLM-L6-v2 bi-encoder as a distillation teacher (cosine scores)
    groups.py    listwise groups: one query, one positive, hard negatives, teacher scores
    loss.py      listwise softmax cross-entropy plus KL distillation from the teacher
    student.py   the cross-encoder built from the bi-encoder's weights, and batch encoding
    trainer.py   the loop: AdamW, warm-up and decay, a wall-clock budget, checkpoints
    validate.py  nDCG@10 of reranking BM25 windows, and the blend weight for the policy
    prepare.py   the cached preparation step (candidates, teacher scores) behind the command
    command.py   ``crossrank train``: prepare, train, validate, save, export, write the card

Nothing outside this package (and ``crossrank.models.export``) imports torch: the serving path
stays on onnxruntime, tokenizers and numpy.
"""

from crossrank.train.config import TrainConfig

__all__ = ["TrainConfig"]
