"""tokenshift: free pretrained language models from their tokenizer.

The public API, one or two main functions and their result types per stage:

    tokenizer   load_tokenizer, Tokenizer                     data      load_texts, TextSet
    assets      prepare_asset                                 modeling  load_model, LoadedModel
    train       train_tokenizer, TrainConfig, TrainReport     measure   measure_tokenizer, compare_tokenizers, TokenizerMeasurement
    transplant  TransplantConfig, TransplantReport (the function: tokenshift.transplant.transplant)
    evaluate    evaluate_loaded, BpbResult, BitsPerByte (and tokenshift.evaluate.evaluate)
    heal        HealConfig, HealReport (the function: tokenshift.heal.heal)
    bytelevel   evaluate_bytes, generate_bytes, ByteBpbResult, ByteEnsemble, evaluate_ensemble, EnsembleResult
    dynamic     evaluate_dynamic, generate_dynamic, DynamicResult
    forensics   infer_mixture, MixtureResult
    export      export_gguf, ExportReport                     demo      run_demo, DemoReport

Each name is imported from its stage on first use (PEP 562), so ``import tokenshift`` imports neither
torch nor transformers; ``from tokenshift import HealConfig`` pays for heal's imports only then.
``transplant``, ``evaluate`` and ``heal`` are not re-exported as functions: they are the names of
their subpackages, which Python binds on ``tokenshift`` as soon as anything imports them, so the same
name would mean the function or the module depending on import order.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "load_tokenizer": "tokenizer", "Tokenizer": "tokenizer",
    "load_texts": "data", "TextSet": "data",
    "prepare_asset": "assets",
    "load_model": "modeling", "LoadedModel": "modeling",
    "train_tokenizer": "train", "TrainConfig": "train", "TrainReport": "train",
    "measure_tokenizer": "measure", "compare_tokenizers": "measure", "TokenizerMeasurement": "measure",
    "TransplantConfig": "transplant", "TransplantReport": "transplant",
    "evaluate_loaded": "evaluate", "BpbResult": "evaluate", "BitsPerByte": "evaluate",
    "HealConfig": "heal", "HealReport": "heal",
    "evaluate_bytes": "bytelevel", "generate_bytes": "bytelevel", "ByteEnsemble": "bytelevel", "ByteBpbResult": "bytelevel",
    "evaluate_ensemble": "bytelevel", "EnsembleResult": "bytelevel",
    "evaluate_dynamic": "dynamic", "generate_dynamic": "dynamic", "DynamicResult": "dynamic",
    "infer_mixture": "forensics", "MixtureResult": "forensics",
    "export_gguf": "export", "ExportReport": "export",
    "run_demo": "demo", "DemoReport": "demo",
    "adapt": "domain", "AdaptConfig": "domain", "AdaptReport": "domain",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    stage = _PUBLIC.get(name)
    if stage is None:
        raise AttributeError(f"module 'tokenshift' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{stage}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
