"""Benchmark: GGUF export of a model (an asset such as smollm2-135m or gemma3-270m, or a folder such as a
transplanted model), per dtype: export wall time (loading included), file size, and bits per byte of the
export read back through transformers' GGUF reader against the HF model.

The read-back model is dequantized to float32 by transformers; its tokenizer is the file's vocabulary
with llama.cpp's pre-tokenizer for ``tokenizer.ggml.pre`` (:func:`tokenshift.export.load_gguf`), so
the bits per byte agree with the HF model's only if both the weights and the tokenizer came through.

Where ``llama_cpp`` (llama-cpp-python, ``pip install -e '.[llama]'``) is importable, llama.cpp itself
also scores every export, with the same protocol as ``tokenshift evaluate``: llama.cpp tokenizes each
document itself, the document is scored independently, conditioned on the same leading token, in
windows of evaluate's default context (2048 for SmolLM2: every document here fits one window), with an
f32 KV cache and without repacked weight buffers (see :func:`llama_cpp_nats`).

    python bench/export.py [--model smollm2-135m] [--dtypes f32 f16 bf16 q8_0] [--bpb-dtypes f32]
                           [--text wiki-fr:test] [--max-bytes 8000] [--keep DIR] [--no-llama-cpp]

    # a transplanted model: smollm2's tokenizer extended for French, moved onto smollm2-135m
    tokenshift train --text wiki-fr:train --vocab-size 50176 --extend smollm2 --out /tmp/x-tok
    tokenshift transplant smollm2-135m /tmp/x-tok --out /tmp/x-model
    python bench/export.py --model /tmp/x-model
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path



def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def llama_cpp_nats(path: Path, documents: list[str], *, conditioning: int, context: int) -> tuple[int, float, int]:
    """llama.cpp's total NLL (nats) of ``documents``: its own tokenization, each document conditioned on
    ``conditioning`` and cut into evaluate's windows. Returns (tokens, nats, windows)."""
    import numpy as np

    from tokenshift.evaluate import document_windows
    from tokenshift.export.read_back import load_llama_cpp

    llm = load_llama_cpp(path, n_ctx=context)
    tokens, nats, n_windows = 0, 0.0, 0
    for document in documents:
        ids = llm.tokenize(document.encode("utf-8"), add_bos=False, special=False)
        tokens += len(ids)
        for window in document_windows(conditioning, ids, context=context):
            llm.reset()
            llm.eval(window.inputs)
            logits = np.asarray(llm.scores[: len(window.inputs)], dtype=np.float64)[-window.scored:]
            targets = np.asarray(window.targets[-window.scored:])
            top = logits.max(axis=1, keepdims=True)
            logsumexp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            nats -= float((logits[np.arange(len(targets)), targets] - logsumexp).sum())
            n_windows += 1
    llm.close()
    return tokens, nats, n_windows


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.evaluate.bpb import default_context
    from tokenshift.export import DTYPES, export_gguf, load_gguf
    from tokenshift.modeling import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="model asset or folder (e.g. from tokenshift transplant)")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--bpb-dtypes", nargs="*", default=["f32"], choices=list(DTYPES),
                        help="exports to read back and score (each is a dequantized fp32 model in memory)")
    parser.add_argument("--text", default="wiki-fr:test")
    parser.add_argument("--max-bytes", type=int, default=8000)
    parser.add_argument("--keep", type=Path, help="write the GGUF files into this new folder instead of a temporary one")
    parser.add_argument("--no-llama-cpp", action="store_true", help="do not score the exports with llama.cpp even if it is installed")
    args = parser.parse_args()
    use_llama_cpp = not args.no_llama_cpp and llama_cpp_available()

    texts = load_texts(args.text, max_bytes=args.max_bytes)
    loaded = load_model(args.model, dtype="float32", device="cpu")
    reference = evaluate_loaded(loaded, texts)
    conditioning, context = loaded.tokenizer.conditioning_token(), default_context(loaded.model)
    del loaded
    rows = [("HF model (safetensors)", "-", "-", "-", reference.tokens, reference.bits_per_byte, "-", None)]
    with tempfile.TemporaryDirectory(prefix="tokenshift-bench-export-") as scratch:
        folder = args.keep or Path(scratch)
        stem = Path(args.model).name  # a folder's name, not its path
        for dtype in args.dtypes:
            report = export_gguf(args.model, folder / f"{stem}-{dtype}.gguf", dtype=dtype)
            tokens, bpb = "-", None
            if dtype in args.bpb_dtypes:
                result = evaluate_loaded(load_gguf(report.out, name=f"{stem}-{dtype}.gguf"), texts)
                tokens, bpb = result.tokens, result.bits_per_byte
            llama_tokens, llama_bpb = "-", None
            if use_llama_cpp:
                llama_tokens, nats, _ = llama_cpp_nats(report.out, texts.documents, conditioning=conditioning, context=context)
                llama_bpb = nats / math.log(2) / texts.n_bytes
            rows.append((f"GGUF {dtype}", report.pre, f"{report.seconds:.1f}", f"{report.bytes / 1e6:,.1f}", tokens, bpb,
                         llama_tokens, llama_bpb))

    where = "transformers' GGUF reader" + (" and llama.cpp" if use_llama_cpp else "; llama.cpp not installed")
    table = Table(title=f"{args.model} exported to GGUF; bits per byte on the leading {texts.n_bytes:,} bytes of {args.text} "
                        f"({len(texts.documents)} documents, context {context}), read back through {where}")
    columns = ["model", "tokenizer.ggml.pre", "export s", "size MB", "tokens", "bits/byte", "Δ vs HF"]
    if use_llama_cpp:
        columns += ["llama.cpp tokens", "llama.cpp bits/byte", "llama.cpp Δ vs HF"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "tokenizer.ggml.pre") else "right")

    def count(tokens: object) -> str:
        return f"{tokens:,}" if isinstance(tokens, int) else str(tokens)

    def bits(bpb: float | None) -> tuple[str, str]:
        if bpb is None:
            return "-", "-"
        return f"{bpb:.4f}", f"{bpb - reference.bits_per_byte:+.2e}"

    for name, pre, seconds, size, tokens, bpb, llama_tokens, llama_bpb in rows:
        cells = [name, pre, seconds, size, count(tokens), *bits(bpb)]
        if name.startswith("HF"):
            cells[-1] = "-"
        if use_llama_cpp:
            cells += [count(llama_tokens), *bits(llama_bpb)]
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
