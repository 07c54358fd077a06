"""The built-in main job, the whole path on real assets: train a tokenizer on wiki fr+en, transplant
SmolLM2-135M onto it training-free, and compare original and transplant in bits per byte."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evaluate import BpbResult

DEMO_MODEL = "smollm2-135m"
DEMO_TRAIN = ("wiki-fr:train", "wiki-en:train")
DEMO_TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")
DEMO_TOKENIZERS = ("gpt2", "llama-3", "qwen2.5", "cl100k")
DEMO_VOCAB = 32_768
DEMO_METHOD = "scaled"  # the best-measured method on this pair so far (see README)
DEMO_BYTES = 32_000  # leading whole documents of each test split, up to this many UTF-8 bytes


@dataclass
class DemoReport:
    original: list[BpbResult]
    transplanted: list[BpbResult]
    measurements: list[Any]  # measure.TokenizerMeasurement
    train: Any  # train.TrainReport
    transplant: Any  # transplant.TransplantReport
    max_bytes: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_bytes": self.max_bytes, "train": self.train.to_json(), "transplant": self.transplant.to_json(),
            "original": [r.to_json() for r in self.original], "transplanted": [r.to_json() for r in self.transplanted],
            "measurements": [m.to_json() for m in self.measurements], "notes": self.notes,
        }


def run_demo(*, max_bytes: int = DEMO_BYTES, progress: Any = None) -> DemoReport:
    """Train → transplant → evaluate on the built-in defaults (about 2-3 minutes on 2 CPU cores)."""
    from .data import load_texts
    from .evaluate import evaluate_loaded
    from .measure import measure_tokenizer
    from .modeling import load_model
    from .modeling.load import LoadedModel
    from .tokenizer import load_tokenizer
    from .train import TrainConfig, train_tokenizer
    from .transplant import TransplantConfig, transplant

    text_sets = [load_texts(spec, max_bytes=max_bytes) for spec in DEMO_TEXTS]
    with tempfile.TemporaryDirectory(prefix="tokenshift-demo-") as scratch:
        new_tokenizer, train_report = train_tokenizer(
            list(DEMO_TRAIN), TrainConfig(vocab_size=DEMO_VOCAB, kind="bpe", like="smollm2"), out=Path(scratch) / "tokenizer"
        )
    new_tokenizer.name = f"wiki-fr+en-{DEMO_VOCAB // 1024}k"
    original = load_model(DEMO_MODEL, device="cpu")
    original_results = [evaluate_loaded(original, text_set, progress=progress) for text_set in text_sets]
    measurements = [measure_tokenizer(tok, text_set) for tok in (original.tokenizer, new_tokenizer) for text_set in text_sets]
    measurements += [measure_tokenizer(load_tokenizer(name), text_set) for name in DEMO_TOKENIZERS for text_set in text_sets]
    del original
    model, tokenizer, transplant_report = transplant(DEMO_MODEL, new_tokenizer, config=TransplantConfig(method=DEMO_METHOD))
    moved = LoadedModel(model=model, tokenizer=tokenizer, name=f"{DEMO_MODEL} → {new_tokenizer.name} ({DEMO_METHOD})", device="cpu", dtype="float32")
    transplanted = [evaluate_loaded(moved, text_set, progress=progress) for text_set in text_sets]
    return DemoReport(
        original=original_results, transplanted=transplanted, measurements=measurements, train=train_report,
        transplant=transplant_report, max_bytes=max_bytes,
        notes=[
            "No gradient step was taken: the transplant's bits per byte is what training-free initialisation gives; "
            "healing (short training) is the next stage.",
            "The wiki splits are different articles per language, not translations: token costs are compared per byte.",
        ],
    )
