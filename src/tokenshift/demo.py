"""The built-in main job, the product's story on real assets: extend SmolLM2's tokenizer with merges
learned on French, transplant SmolLM2-135M onto it training-free, heal it for a few CPU minutes, and
compare original / zero-shot / healed in tokens per byte and bits per byte on en, fr and es."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evaluate import BpbResult

DEMO_MODEL = "smollm2-135m"
DEMO_BASE = "smollm2"  # the model's own tokenizer, extended
DEMO_TRAIN = ("wiki-fr:train",)  # the merges are learned on French
DEMO_HEAL_TEXT = ("wiki-fr:train", "wiki-en:train")  # heal on French and English, so English is evaluated too
DEMO_MERGES = 8192
DEMO_MINUTES = 5.0
DEMO_TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")
DEMO_TOKENIZERS = ("gpt2", "llama-3", "qwen2.5", "cl100k")
DEMO_BYTES = 32_000  # leading whole documents of each test split, up to this many UTF-8 bytes


def default_report_path() -> Path:
    """Where ``tokenshift demo`` writes its page unless ``--report`` says: beside the prepared assets it ran on."""
    from .storage import tokenshift_home

    return tokenshift_home() / "demo" / "report.html"


@dataclass
class DemoReport:
    original: list[BpbResult]
    transplanted: list[BpbResult]
    healed: list[BpbResult]
    measurements: list[Any]  # measure.TokenizerMeasurement
    train: Any  # train.TrainReport
    transplant: Any  # transplant.TransplantReport
    heal: Any  # heal.HealReport
    max_bytes: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_bytes": self.max_bytes, "train": self.train.to_json(), "transplant": self.transplant.to_json(), "heal": self.heal.to_json(),
            "original": [r.to_json() for r in self.original], "transplanted": [r.to_json() for r in self.transplanted],
            "healed": [r.to_json() for r in self.healed], "measurements": [m.to_json() for m in self.measurements], "notes": self.notes,
        }


def run_demo(*, max_bytes: int = DEMO_BYTES, minutes: float = DEMO_MINUTES, progress: Any = None, heal_progress: Any = None) -> DemoReport:
    """Extend → transplant → heal → evaluate on the built-in defaults (about 8 minutes on 2 CPU cores)."""
    from .data import load_texts
    from .evaluate import evaluate_loaded
    from .heal import HealConfig, heal
    from .measure import measure_tokenizer
    from .modeling import load_model
    from .modeling.load import LoadedModel
    from .tokenizer import load_tokenizer
    from .train import TrainConfig, train_tokenizer
    from .transplant import TransplantConfig, transplant

    text_sets = [load_texts(spec, max_bytes=max_bytes) for spec in DEMO_TEXTS]
    with tempfile.TemporaryDirectory(prefix="tokenshift-demo-") as scratch:
        base = load_tokenizer(DEMO_BASE)
        new_tokenizer, train_report = train_tokenizer(
            list(DEMO_TRAIN), TrainConfig(vocab_size=base.vocab_size + DEMO_MERGES, extend=DEMO_BASE), out=Path(scratch) / "tokenizer"
        )
        new_tokenizer = new_tokenizer.replaced(name=f"{DEMO_BASE}+fr-{DEMO_MERGES // 1024}k")
        original = load_model(DEMO_MODEL, device="cpu")
        original_results = [evaluate_loaded(original, text_set, progress=progress) for text_set in text_sets]
        measurements = [measure_tokenizer(tok, text_set) for tok in (original.tokenizer, new_tokenizer) for text_set in text_sets]
        measurements += [measure_tokenizer(load_tokenizer(name), text_set) for name in DEMO_TOKENIZERS for text_set in text_sets]
        del original
        moved_dir = Path(scratch) / "transplant"
        model, tokenizer, transplant_report = transplant(DEMO_MODEL, str(Path(scratch) / "tokenizer"), out=moved_dir,
                                                         config=TransplantConfig(method="auto"))
        moved = LoadedModel(model=model, tokenizer=tokenizer, name=f"{DEMO_MODEL} → {new_tokenizer.name} (zero-shot {transplant_report.method})",
                            device="cpu", dtype="float32")
        transplanted = [evaluate_loaded(moved, text_set, progress=progress) for text_set in text_sets]
        del model, moved
        healed_model, healed_tokenizer, heal_report = heal(str(moved_dir), config=HealConfig(text=DEMO_HEAL_TEXT, minutes=minutes),
                                                           progress=heal_progress)
    healed = LoadedModel(model=healed_model, tokenizer=healed_tokenizer, name=f"{DEMO_MODEL} → {new_tokenizer.name} (healed {minutes:g} min)",
                         device="cpu", dtype="float32")
    healed_results = [evaluate_loaded(healed, text_set, progress=progress) for text_set in text_sets]
    return DemoReport(
        original=original_results, transplanted=transplanted, healed=healed_results, measurements=measurements, train=train_report,
        transplant=transplant_report, heal=heal_report, max_bytes=max_bytes,
        notes=[
            f"Heal ({heal_report.recipe}) trained only the {DEMO_MERGES:,} new rows, for {minutes:g} minutes, on text other than these test "
            f"splits; it kept '{heal_report.kept.get('state')}': {heal_report.kept.get('reason')}.",
            "The wiki splits are different articles per language, not translations: token costs are compared per byte.",
        ],
    )
