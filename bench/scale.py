"""Benchmark: tokenshift at real model sizes, on random-weight models of real shapes (bench/shapes.py:
Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B, Qwen2.5-7B; bf16, shards of <= 5 GB, the real tokenizer).
Only memory and time mean anything on them; quality is measured on the real small models elsewhere.

Per shape, every stage runs as its own process; its wall time and peak resident memory (the whole
process: ``os.wait4``'s ru_maxrss) are read when it ends:

    transplant   tokenshift transplant MODEL smollm2 (a replacement, auto method)
    extension    tokenshift transplant MODEL EXT, EXT = the model's own tokenizer + 2,048 French merges
    export       tokenshift export TRANSPLANTED --gguf --dtype q8_0, then bf16
    evaluate     tokenshift evaluate MODEL --text wiki-en:test --max-bytes 2000 (defaults otherwise)
    heal         tokenshift heal TRANSPLANTED --recipe distill-rows --minutes 2 (the 1B shape only)
    loads        transformers loads the transplanted folder and runs it on a sentence; llama.cpp reads the
                 GGUF's vocabulary (vocab_only) and tokenizes the sentence as the folder's tokenizer does
    tokensurgeon mergekit-tokensurgeon MODEL DONOR (-a subword), DONOR a small random model with smollm2's
                 tokenizer: the peer anchor, measured in the same run (peers' venv: ``make peers``)

    python bench/scale.py [--shapes llama-3.1-8b qwen2.5-7b] [--root /var/tmp/tokenshift-scale]
                          [--stages transplant extension export evaluate heal loads tokensurgeon]
                          [--peer-python .venv-peers/bin/python] [--json results.json]

Models are written once under --root and reused (the 8B shape: 16 GB, about 2 minutes); each stage's
output is removed once measured, so the 8B run needs about 50 GB free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKENSHIFT = [sys.executable, "-m", "tokenshift.cli"]
STAGES = ("transplant", "extension", "export", "evaluate", "heal", "loads", "tokensurgeon")
HEAL_SHAPES = ("llama-3.2-1b",)
SENTENCE = "Le chat mange une pomme; the cat eats 12345 apples."
GB = 1e9


@dataclass
class Row:
    shape: str
    stage: str
    wall_s: float
    peak_gb: float
    weights_gb: float  # the model's stored weights, for the ratio
    output_gb: float
    dtype: str
    ok: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.peak_gb / self.weights_gb if self.weights_gb else 0.0


def measure(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 3600) -> tuple[float, float, int, str]:
    """(wall seconds, peak resident GB of the process, exit code, what it printed)."""
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"tokenshift-scale-{os.getpid()}.log"
    with log.open("w") as out:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=REPO)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
            time.sleep(0.2)
        wall = time.perf_counter() - began
    text = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    return wall, usage.ru_maxrss * 1024 / GB, os.waitstatus_to_exitcode(status), text


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else 0


def stored(folder: Path) -> tuple[float, str]:
    """(GB of weights, main dtype) of a model folder."""
    from tokenshift.weights import Checkpoint

    checkpoint = Checkpoint.open(folder)
    return checkpoint.nbytes / GB, checkpoint.main_dtype()


def donor_model(root: Path) -> Path:
    """A 2-layer random llama over smollm2's tokenizer: tokensurgeon's donor (it needs a model, not a tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tokenshift.assets.registry import prepare_asset

    folder = root / "donor-smollm2"
    if (folder / "config.json").is_file():
        return folder
    tokenizer = Path(prepare_asset("smollm2"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    model.save_pretrained(folder, safe_serialization=True)
    for path in tokenizer.iterdir():
        if path.name.startswith("tokenizer"):
            shutil.copy2(path, folder / path.name)
    return folder


def extension_tokenizer(root: Path, asset: str) -> Path:
    """The model's own tokenizer extended by 2,048 merges learned on French Wikipedia (made once)."""
    from tokenshift.tokenizer import load_tokenizer

    folder = root / f"ext-{asset}"
    if not (folder / "tokenizer.json").is_file():
        vocab = load_tokenizer(asset).vocab_size
        subprocess.run([*TOKENSHIFT, "train", "--extend", asset, "--text", "wiki-fr:train", "--vocab-size", str(vocab + 2048),
                        "--out", str(folder)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return folder


def check_loads(folder: Path, gguf: Path | None) -> tuple[bool, str]:
    """transformers loads ``folder`` and runs it on SENTENCE; llama.cpp reads ``gguf``'s vocabulary and
    tokenizes SENTENCE as the folder's tokenizer does (run in a child so its memory is its own)."""
    script = f"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, gguf, sentence = {str(folder)!r}, {str(gguf) if gguf else None!r}, {SENTENCE!r}
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
ids = tokenizer(sentence, add_special_tokens=False).input_ids
with torch.no_grad():
    logits = model(torch.tensor([ids[:8]])).logits
result = {{"transformers": bool(torch.isfinite(logits.float()).all()) and logits.shape[-1] == model.config.vocab_size}}
if gguf:
    try:
        import llama_cpp
    except ImportError:
        result["llama.cpp"] = None
    else:
        llm = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)
        result["llama.cpp"] = llm.tokenize(sentence.encode(), add_bos=False, special=False) == ids
print(json.dumps(result))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        return False, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    note = ", ".join(f"{k}: {'yes' if v else ('not installed' if v is None else 'NO')}" for k, v in result.items())
    return all(v is not False for v in result.values()), note


def run_shape(name: str, root: Path, stages: list[str], peer_python: Path | None) -> list[Row]:
    shape = SHAPES[name]
    started = time.perf_counter()
    model = root / name
    # In a child process: a process's peak memory survives fork and exec, so every stage started after
    # building the model here would report the builder's peak (one 5 GB shard) as its own.
    subprocess.run([sys.executable, "-c", f"from shapes import SHAPES, write_random_model; from pathlib import Path; "
                                          f"write_random_model(Path({str(model)!r}), SHAPES[{name!r}])"],
                   check=True, cwd=Path(__file__).resolve().parent)
    print(f"{name}: model ready in {time.perf_counter() - started:.0f} s ({folder_bytes(model) / GB:.1f} GB)", flush=True)
    weights, dtype = stored(model)
    rows: list[Row] = []

    def run(stage: str, command: list[str], output: Path | None, *, env: dict[str, str] | None = None) -> Row:
        if output is not None and output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        wall, peak, code, printed = measure(command, env=env)
        tail = " | ".join(line for line in printed.splitlines()[-3:] if "Loading weights" not in line)
        if "--json" in command and code == 0:
            start = printed.index("\n[") + 1 if not printed.startswith("[") else 0
            out_dtype = json.JSONDecoder().raw_decode(printed[start:])[0][0].get("dtype", "")
        if "--json" not in command or code:
            out_dtype = ""
        if output is not None and output.is_dir() and code == 0 and any(output.glob("*.safetensors")):
            out_dtype = stored(output)[1]
        elif output is not None and output.suffix == ".gguf":
            out_dtype = command[command.index("--dtype") + 1] if "--dtype" in command else ""
        row = Row(name, stage, round(wall, 1), round(peak, 2), round(weights, 2), round(folder_bytes(output) / GB, 2) if output else 0.0,
                  out_dtype, code == 0, "" if code == 0 else f"exit {code}: {tail[-300:]}")
        rows.append(row)
        print(f"  {stage:22s} {row.wall_s:8.1f} s  peak {row.peak_gb:6.2f} GB ({row.ratio:.2f}x weights)  out {row.output_gb:6.2f} GB {out_dtype} "
              f"{'' if row.ok else row.note}", flush=True)
        return row

    transplanted = root / f"{name}-transplant"
    if {"transplant", "export", "heal", "loads"} & set(stages):
        run("transplant (replacement)", [*TOKENSHIFT, "transplant", str(model), "smollm2", "--out", str(transplanted)], transplanted)
    if "loads" in stages and transplanted.is_dir():
        gguf = root / f"{name}-vocab-check.gguf"
        subprocess.run([*TOKENSHIFT, "export", str(transplanted), "--gguf", str(gguf), "--dtype", "q8_0"], cwd=REPO,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok, note = check_loads(transplanted, gguf if gguf.is_file() else None)
        rows.append(Row(name, "loads", 0.0, 0.0, round(weights, 2), 0.0, "", ok, note))
        print(f"  loads                  {note}", flush=True)
        gguf.unlink(missing_ok=True)
    if "export" in stages and transplanted.is_dir():
        for gguf_dtype in ("q8_0", "bf16"):
            out = root / f"{name}-{gguf_dtype}.gguf"
            run(f"export {gguf_dtype}", [*TOKENSHIFT, "export", str(transplanted), "--gguf", str(out), "--dtype", gguf_dtype], out)
            out.unlink(missing_ok=True)
    if "heal" in stages and name in HEAL_SHAPES and transplanted.is_dir():
        healed = root / f"{name}-healed"
        run("heal distill-rows 2 min", [*TOKENSHIFT, "heal", str(transplanted), "--recipe", "distill-rows", "--minutes", "2",
                                        "--text", "wiki-en:train", "--out", str(healed)], healed)
        heal_json = healed / "heal.json"
        if heal_json.is_file():
            report = json.loads(heal_json.read_text())
            rows[-1].weights_gb = round(stored(transplanted)[0], 2)  # the healed model's own weights
            rows[-1].note = (f"{report['tokens']:,} tokens trained, eval {report['eval_bytes']:,} bytes, body {report['dtype']}, "
                             f"teacher shares the body: {report['teacher_shares_body']}")
        shutil.rmtree(healed, ignore_errors=True)
    shutil.rmtree(transplanted, ignore_errors=True)
    if "extension" in stages:
        tokenizer = extension_tokenizer(root, shape.tokenizer)
        extended = root / f"{name}-extension"
        run("transplant (extension)", [*TOKENSHIFT, "transplant", str(model), str(tokenizer), "--out", str(extended)], extended)
        shutil.rmtree(extended, ignore_errors=True)
    if "evaluate" in stages:
        run("evaluate 2 KB", [*TOKENSHIFT, "evaluate", str(model), "--text", "wiki-en:test", "--max-bytes", "2000", "--json"], None)
    if "tokensurgeon" in stages and peer_python is not None:
        surgeon = peer_python.parent / "mergekit-tokensurgeon"
        out = root / f"{name}-tokensurgeon"
        if surgeon.exists():
            run("mergekit-tokensurgeon", [str(surgeon), str(model), str(donor_model(root)), str(out), "-a", "subword", "--quiet"], out,
                env={"HF_HUB_OFFLINE": "1"})
            shutil.rmtree(out, ignore_errors=True)
        else:
            print(f"  tokensurgeon: {surgeon} not found (make peers)")
    return rows


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["llama-3.2-1b", "llama-3.1-8b"], choices=list(SHAPES))
    parser.add_argument("--root", default="/var/tmp/tokenshift-scale", help="where the models and outputs go (reused)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--peer-python", default=str(REPO / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    peer = Path(args.peer_python)
    rows = []
    for name in args.shapes:
        rows.extend(run_shape(name, root, args.stages, peer if peer.exists() else None))
    table = Table(title=f"tokenshift at size ({os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.0f} GB)")
    for column in ("shape", "stage", "wall s", "peak GB", "x weights", "output GB", "dtype", "ok", "note"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.shape, r.stage, f"{r.wall_s:.0f}" if r.wall_s else "", f"{r.peak_gb:.2f}" if r.peak_gb else "",
                      f"{r.ratio:.2f}" if r.peak_gb else "", f"{r.output_gb:.2f}" if r.output_gb else "", r.dtype,
                      "yes" if r.ok else "NO", r.note)
    Console(width=200).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps([{**asdict(r), "ratio": round(r.ratio, 3)} for r in rows], indent=2))


if __name__ == "__main__":
    main()
