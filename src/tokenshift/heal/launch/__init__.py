"""``accelerate`` config files for healing on several processes (the stages recipe): ``ddp`` and
``fsdp2`` for GPUs, ``ddp-cpu`` for CPU processes (gloo), as the tests run it. accelerate runs FSDP on
GPUs only (on a machine without one it falls back to independent processes), so FSDP has no CPU config.

    accelerate launch --config_file $(tokenshift launch-config fsdp2) -m tokenshift.cli heal MODEL --recipe stages ...
"""

from __future__ import annotations

from pathlib import Path

from ...registry import lookup

CONFIGS = {path.stem: path for path in sorted(Path(__file__).parent.glob("*.yaml"))}


def launch_config(name: str) -> Path:
    """The path of the shipped config ``name`` (ddp, fsdp2, ddp-cpu)."""
    return lookup(CONFIGS, name, what="launch config")
