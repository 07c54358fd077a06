"""Benchmark: Ctrl-C (SIGINT) in the middle of each command's heaviest part, on the real assets.

For each run: the command starts, SIGINT is sent after a delay that lands in its long part (the Rust
BPE trainer, the transplant's methods or save, the forward passes of evaluate, a training step of
heal), and the bench measures how long the process takes to exit, its exit code, and what it left
beside its output (temporaries, a half-written folder). Target: exit 130 within 2 seconds, nothing
left (heal with checkpoints: the checkpoint it writes first, timed separately).

    python bench/interrupt.py [--only train transplant evaluate measure heal-stages heal-rows]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from targets import targets_table  # bench/targets.py, beside this script

RUNS = {
    # name: (command after "tokenshift", seconds before SIGINT, what is running then)
    "train": (["train", "--text", "wiki-fr:train", "wiki-en:train", "wiki-es:train", "--vocab-size", "65536", "--kind", "superbpe",
               "--out", "{out}"], 5.0, "the Rust BPE trainer"),
    "transplant": (["transplant", "smollm2-135m", "qwen2.5", "--method", "omp", "--out", "{out}"], 20.0, "OMP over 151k rows"),
    "evaluate": (["evaluate", "smollm2-135m", "--text", "wiki-fr:test"], 15.0, "forward passes"),
    "measure": (["measure", "smollm2", "--text", "{big}"], 6.0, "the Rust encoder on one 44 MB document"),
    "heal-stages": (["heal", "smollm2-135m", "--text", "wiki-fr:train", "--steps", "40", "--objective", "ntp", "--stages", "all:lr=1e-5",
                     "--batch-size", "4", "--seq-len", "256", "--eval-bytes", "0", "--checkpoint-every", "10", "--out", "{out}"], 60.0,
                    "a training step (checkpoints on)"),
    "heal-rows": (["heal", "{transplanted}", "--text", "wiki-fr:train", "--minutes", "3", "--out", "{out}"], 60.0, "distill-rows steps"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    python = sys.executable
    scratch = Path(tempfile.mkdtemp(prefix="tokenshift-interrupt-"))
    transplanted = scratch / "transplanted"
    big = scratch / "big.txt"
    if "measure" in args.only:
        from tokenshift.data import load_texts

        text = "\n".join(doc for lang in ("en", "fr", "es") for doc in load_texts(f"wiki-{lang}:train").documents)
        big.write_text(text * 4, encoding="utf-8")
    if "heal-rows" in args.only:
        extension = scratch / "extension"
        for prepare in (["train", "--text", "wiki-fr:train", "--vocab-size", "50176", "--extend", "smollm2", "--out", str(extension)],
                        ["transplant", "smollm2-135m", str(extension), "--out", str(transplanted)]):
            subprocess.run([python, "-m", "tokenshift.cli", *prepare], check=True, capture_output=True)
    table = Table(title="Ctrl-C (SIGINT) in the middle of each command")
    for column in ("command", "interrupted during", "after s", "exit code", "exit s", "left beside the output", "last line (checkpoints)"):
        table.add_column(column, justify="right" if column in ("after s", "exit code", "exit s") else "left")
    checks = []
    for name in args.only:
        command, delay, during = RUNS[name]
        out = scratch / f"out-{name}"
        argv = [part.format(out=out, transplanted=transplanted, big=big) for part in command]
        # stderr to a file, not a pipe read at the end: a full pipe would block the run's progress output
        log = scratch / f"{name}.err"
        with log.open("w") as sink:
            process = subprocess.Popen([python, "-m", "tokenshift.cli", *argv], stdout=subprocess.DEVNULL, stderr=sink, text=True)
        time.sleep(delay)
        if process.poll() is not None:
            last = (log.read_text().strip().splitlines() or [""])[-1]
            table.add_row(name, during, f"{delay:.0f}", str(process.returncode), "-", "-", f"ended before the signal: {last[:60]}")
            continue
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        process.wait()
        seconds = time.perf_counter() - sent
        err = log.read_text()
        left = sorted(p.name for p in scratch.iterdir() if p.name.startswith(".tokenshift-") or p.name == out.name)
        checkpoints = out.parent / f"{out.name}.checkpoints"
        kept = sorted(p.name for p in checkpoints.iterdir()) if checkpoints.is_dir() else []
        last = (err.strip().splitlines() or [""])[-1]
        table.add_row(name, during, f"{delay:.0f}", str(process.returncode), f"{seconds:.2f}", ", ".join(left) or "nothing",
                      last.removeprefix("tokenshift: ")[:90] + (f" [{', '.join(kept)}]" if kept else ""))
        target = "<= 2 s" if not kept else "exit 130 (checkpoint first)"
        ok = process.returncode == 130 and not left and (seconds <= 2.0 or bool(kept))
        checks.append((f"{name}: exit after Ctrl-C", f"{process.returncode}, {seconds:.2f} s", target, ok))
    console.print(table)
    console.print(targets_table("Interrupt targets", checks))
    os.system(f"rm -rf {scratch}")


if __name__ == "__main__":
    main()
