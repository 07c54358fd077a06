"""The built-in main job: how well SmolLM2 reads English, French and Spanish, and at what token cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .evaluate import BpbResult

DEMO_MODEL = "smollm2-135m"
DEMO_TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")
DEMO_TOKENIZERS = ("smollm2", "gpt2", "llama-3", "qwen2.5", "cl100k")
DEMO_BYTES = 32_000  # leading whole documents of each test split, up to this many UTF-8 bytes


@dataclass
class DemoReport:
    evaluations: list[BpbResult]
    measurements: list[Any]  # measure.TokenizerMeasurement
    max_bytes: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_bytes": self.max_bytes,
            "evaluations": [r.to_json() for r in self.evaluations],
            "measurements": [m.to_json() for m in self.measurements],
            "notes": self.notes,
        }


def run_demo(*, max_bytes: int = DEMO_BYTES, model: str = DEMO_MODEL, tokenizers: tuple[str, ...] = DEMO_TOKENIZERS,
             texts: tuple[str, ...] = DEMO_TEXTS, progress: Any = None) -> DemoReport:
    """Evaluate ``model`` on each text slice and measure each tokenizer on the same slices."""
    from .data import load_texts
    from .evaluate import evaluate_loaded
    from .measure import measure_tokenizer
    from .modeling import load_model
    from .tokenizer import load_tokenizer

    text_sets = [load_texts(spec, max_bytes=max_bytes) for spec in texts]
    loaded = load_model(model)
    evaluations = [evaluate_loaded(loaded, text_set, progress=progress) for text_set in text_sets]
    measurements = []
    for name in tokenizers:
        tokenizer = loaded.tokenizer if name == "smollm2" else load_tokenizer(name)
        measurements.extend(measure_tokenizer(tokenizer, text_set) for text_set in text_sets)
    return DemoReport(evaluations=evaluations, measurements=measurements, max_bytes=max_bytes, notes=[
        "The wiki splits are different articles per language, not translations: token costs are compared per byte, "
        "not as a parallel-text token premium.",
    ])
