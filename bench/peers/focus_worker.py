"""Run FOCUS (Dobler & de Melo 2023, the `deepfocus` package) for one transplant; used by bench/transplant.py.

Runs under a Python that has `deepfocus` (and its fasttext) installed, which need not be tokenshift's:

    PEER_PYTHON focus_worker.py SOURCE_MODEL_DIR TARGET_TOKENIZER_JSON TRAIN_TEXT_TXT OUT.safetensors

Writes the new input-embedding matrix (V_new, D) as tensor "embeddings" and prints one JSON line with
the wall time and peak memory. The auxiliary fastText model is trained on TRAIN_TEXT_TXT, tokenized
with the target tokenizer (FOCUS's "fasttext-tokenlevel" mode).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(source: str, target_tokenizer: str, train_text: str, out: str) -> None:
    from deepfocus import FOCUS
    from safetensors.torch import load_file, save_file
    from transformers import PreTrainedTokenizerFast

    started = time.perf_counter()
    source_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(source) / "tokenizer.json"))
    target = PreTrainedTokenizerFast(tokenizer_file=target_tokenizer)
    weights = load_file(str(Path(source) / "model.safetensors"))
    name = next(k for k in weights if k.endswith("embed_tokens.weight"))
    embeddings = FOCUS(source_embeddings=weights[name], source_tokenizer=source_tokenizer, target_tokenizer=target,
                       target_training_data_path=train_text, auxiliary_embedding_mode="fasttext-tokenlevel",
                       processes=2, verbosity="silent")
    save_file({"embeddings": embeddings.contiguous().float()}, out)
    usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
