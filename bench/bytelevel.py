"""Benchmark: byte-level against token-level, ensembles across tokenizers, token healing, and speed.

In one run, on a fixed slice of each text (the leading bytes, cut at a space):

1. token-level bits per byte (``evaluate_loaded``) against byte-level bits per byte of the same model;
2. the mixture of the models' next-byte distributions against each model alone;
3. token healing: prompts cut inside a word (and inside a token of every model); share of cases where
   greedy decoding completes the word as written, byte-level against plain token-level decoding;
4. cost: seconds per byte of byte-level scoring against one token-level decoding step (one token, KV
   cache) and against batched token-level scoring.

    python bench/bytelevel.py [--models smollm2-135m gemma3-270m] [--text wiki-en:test wiki-fr:test]
                              [--max-bytes 400] [--heal-cases 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import re
import time

import torch
from rich.console import Console
from rich.table import Table

from tokenshift.bytelevel import BEAM, FITTED, MIXES, THRESHOLD, WINDOW, ByteLevelModel, evaluate_ensemble, generate_bytes, generate_tokens
from tokenshift.data import TextSet, load_texts
from tokenshift.evaluate import evaluate_loaded
from tokenshift.modeling import load_model

def text_slice(spec: str, max_bytes: int) -> TextSet:
    """The leading documents of ``spec`` up to ``max_bytes`` bytes, the last one cut at a space."""
    documents, total = [], 0
    for doc in load_texts(spec).documents:
        data = doc.encode("utf-8")
        if total + len(data) > max_bytes:
            cut = data[: max_bytes - total].rfind(b" ")
            if cut > 0:
                documents.append(data[:cut].decode("utf-8"))
            break
        documents.append(doc)
        total += len(data)
    return TextSet(f"{spec}[:{max_bytes}B]", documents)


def heal_cases(spec: str, tokenizers: list, count: int, *, skip_bytes: int, context: int = 120) -> list[tuple[str, str]]:
    """(prompt, rest of the word) pairs: the prompt ends inside a word, inside a token of every tokenizer."""
    cases = []
    for doc in load_texts(spec).documents:
        data = doc.encode("utf-8")
        for match in re.finditer(r"(?<=\s)[^\W\d_]{6,}", doc):
            start = len(doc[: match.start()].encode("utf-8"))
            if start < skip_bytes:
                continue
            word = match.group().encode("utf-8")
            cut = start + len(word) // 2
            head = data[max(0, cut - context) : cut]
            space = head.find(b" ")
            head = head[space + 1 :]
            try:
                prompt = head.decode("utf-8")
            except UnicodeDecodeError:
                continue
            whole = data[max(0, cut - len(head)) : start + len(word)].decode("utf-8", errors="ignore")
            inside = True
            for tokenizer in tokenizers:
                encoded = tokenizer.encode_with_offsets(whole)
                if len(head) in encoded.ends:  # a token boundary at the cut: not a mid-token case
                    inside = False
            if inside:
                cases.append((prompt, word[len(word) // 2 :].decode("utf-8", errors="ignore")))
            if len(cases) == count:
                return cases
    return cases


def completes(generated: str, rest: str) -> bool:
    """The continuation finishes the word exactly: the rest of the word, then no further letter."""
    if not generated.startswith(rest):
        return False
    after = generated[len(rest) : len(rest) + 1]
    return not after or not after.isalpha()


def decode_step_seconds(loaded) -> float:
    """Mean seconds of one token-level decoding step (one token forward with a KV cache, greedy)."""
    generate_tokens(loaded, "The", max_bytes=8)  # warm-up
    result = generate_tokens(loaded, "The history of", max_bytes=96)
    return result.seconds / result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--text", nargs="+", default=["wiki-en:test", "wiki-fr:test"])
    parser.add_argument("--max-bytes", type=int, default=400, help="bytes scored per text (a fixed leading slice)")
    parser.add_argument("--heal-cases", type=int, default=10, help="token-healing prompts per text")
    parser.add_argument("--beam", type=int, default=BEAM)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's; 1 is fastest on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    slices = [text_slice(spec, args.max_bytes) for spec in args.text]
    # the same amount of each language's validation split, to fit the ensemble's linear weights on
    held_out = {texts.name: text_slice(spec.replace(":test", ":validation"), args.max_bytes) for spec, texts in zip(args.text, slices)}
    loaded = {name: load_model(name) for name in args.models}
    byte_models = {name: ByteLevelModel(m, beam=args.beam, threshold=args.threshold, window=args.window) for name, m in loaded.items()}
    cases = {spec: heal_cases(spec, [m.tokenizer for m in loaded.values()], args.heal_cases, skip_bytes=args.max_bytes)
             for spec in args.text}

    step_seconds, token_level = {}, {}
    for name, model in loaded.items():
        evaluate_loaded(model, slices[0].limit_bytes(200))  # warm-up
        step_seconds[name] = decode_step_seconds(model)
        for texts in slices:
            token_level[(name, texts.name)] = evaluate_loaded(model, texts)
    # every member scores each text once; every mix comes from those scores, the fitted weights from the validation slice
    ensembles = {texts.name: evaluate_ensemble(list(byte_models.values()), texts, mixes=list(MIXES), fit_on=held_out[texts.name])[0]
                 for texts in slices}
    rows = [(texts.name, name, token_level[(name, texts.name)], byt)
            for texts in slices for name, byt in zip(args.models, ensembles[texts.name].members)]

    console = Console(width=200)
    table = Table(title=f"Bits per byte, token level vs byte level (beam {args.beam}, threshold {args.threshold:g}, "
                        f"window {args.window} tokens; {torch.get_num_threads()} CPU threads)")
    for column in ("text", "model", "bytes", "token bpb", "byte bpb", "byte ≤ token", "token B/s", "byte B/s",
                   "items/byte", "dropped mass max", "exact?"):
        table.add_column(column, justify="left" if column in ("text", "model", "exact?") else "right")
    for text, name, tok, byt in rows:
        items = sum(s.mean_items * s.steps for s in byt.stats) / max(1, sum(s.steps for s in byt.stats))
        dropped = max(s.dropped_mass_max for s in byt.stats)
        table.add_row(text, name, f"{byt.bytes:,}", f"{tok.bits_per_byte:.4f}", f"{byt.bits_per_byte:.4f}",
                      "yes" if byt.bits_per_byte <= tok.bits_per_byte + 1e-9 else "NO", f"{tok.bytes_per_second:,.0f}",
                      f"{byt.bytes_per_second:,.2f}", f"{items:.2f}", f"{dropped:.1e}",
                      "exact" if byte_models[name].exactness.exact else "approx.")
    console.print(table)

    table = Table(title="Ensembles of the byte-level models (mixture of next-byte distributions, equal prior weights; "
                        "fitted: linear weights fitted on the same amount of the language's validation split; "
                        "mixture B/s: all members' scoring time)")
    keys = (*MIXES, FITTED)
    for column in ("text", "best single (byte bpb)", *(f"{mix} mix bpb" for mix in keys), "fitted weights",
                   *(f"{mix} - best" for mix in keys), "mixture B/s"):
        table.add_column(column, justify="left" if column == "text" else "right")
    for text, e in ensembles.items():
        table.add_row(text, f"{e.best_member.bits_per_byte:.4f}", *(f"{e.mixtures[k].bits_per_byte:.4f}" for k in keys),
                      " ".join(f"{w:.3f}" for w in e.fitted_weights or []), *(f"{e.gain(k):+.4f}" for k in keys),
                      f"{e.mixtures[FITTED].bytes_per_second:,.2f}")
    console.print(table)

    table = Table(title="Token healing: prompt cut inside a word (and inside a token of every model); greedy completion "
                        "of the word as written (byte level: prompt's canonical tokens but the last 2 taken as given)")
    for column in ("text", "model", "cases", "byte-level", "token-level", "byte-level gen B/s", "token-level gen B/s"):
        table.add_column(column, justify="left" if column in ("text", "model") else "right")
    examples = []
    for spec in args.text:
        for name, model in loaded.items():
            hits_bytes = hits_tokens = 0
            seconds_bytes = seconds_tokens = 0.0
            bytes_bytes = bytes_tokens = 0
            for prompt, rest in cases[spec]:
                budget = len(rest.encode("utf-8")) + 2
                by = generate_bytes(byte_models[name], prompt, max_bytes=budget, back_off=2)
                tk = generate_tokens(model, prompt, max_bytes=budget)
                hits_bytes += completes(by.text, rest)
                hits_tokens += completes(tk.text, rest)
                seconds_bytes += by.seconds
                seconds_tokens += tk.seconds
                bytes_bytes += by.bytes
                bytes_tokens += tk.bytes
                if len(examples) < 4:
                    examples.append(f"{name}: …{prompt[-30:]!r} | rest {rest!r} | bytes {by.text!r} | tokens {tk.text!r}")
            n = len(cases[spec])
            table.add_row(spec, name, str(n), f"{hits_bytes}/{n} ({hits_bytes / max(1, n):.0%})",
                          f"{hits_tokens}/{n} ({hits_tokens / max(1, n):.0%})",
                          f"{bytes_bytes / seconds_bytes:,.2f}" if seconds_bytes else "-",
                          f"{bytes_tokens / seconds_tokens:,.2f}" if seconds_tokens else "-")
    console.print(table)
    for line in examples:
        console.print(f"  e.g. {line}", markup=False)

    table = Table(title="Cost per byte: byte-level scoring against token-level forwards (same run, same threads)")
    for column in ("model", "byte-level s/byte", "token decode step s/token", "factor vs one decode step",
                   "batched token scoring s/byte", "factor vs batched scoring", "tokens forwarded/byte"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in args.models:
        byte_rows = [byt for _, n, _, byt in rows if n == name]
        token_rows = [tok for _, n, tok, _ in rows if n == name]
        per_byte = sum(r.seconds for r in byte_rows) / sum(r.bytes for r in byte_rows)
        scoring = sum(r.seconds for r in token_rows) / sum(r.bytes for r in token_rows)
        forwarded = sum(s.tokens_forwarded for r in byte_rows for s in r.stats) / sum(r.bytes for r in byte_rows)
        table.add_row(name, f"{per_byte:.4f}", f"{step_seconds[name]:.4f}", f"{per_byte / step_seconds[name]:.1f}x",
                      f"{scoring:.5f}", f"{per_byte / scoring:.0f}x", f"{forwarded:.2f}")
    console.print(table)
    for name, model in byte_models.items():
        console.print(f"{name}: {model.exactness.note}", markup=False)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"bench/bytelevel.py finished in {time.perf_counter() - started:.0f} s")
