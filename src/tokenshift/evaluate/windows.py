"""How a document longer than the context is cut into scoring windows.

A document's ids ``x1..xn`` are prefixed with one conditioning token ``C`` (BOS, or the model's
document separator), giving ``s = C x1 .. xn``. Every ``xi`` is predicted and scored exactly once;
``C`` itself is never scored. Targets are taken in blocks of ``stride`` tokens; each block is scored by
a window holding the ``context`` tokens of ``s`` just before the block's last target (so a short
last block still gets a full window of history).

    context=4, stride=4 (the default: disjoint windows, but for the last one)
        s:         C  x1 x2 x3 x4 x5 x6 x7
        window 0:  C  x1 x2 x3                -> scores x1 x2 x3 x4
        window 1:        x3 x4 x5 x6          -> scores x5 x6 x7 (its first prediction is context only)

    context=4, stride=2 (overlapping: each block sees at least context-stride tokens of history)
        window 0:  C  x1                      -> scores x1 x2
        window 1:  C  x1 x2 x3                -> scores x3 x4 (its first 2 predictions are context only)
        window 2:        x2 x3 x4 x5          -> scores x5 x6
        window 3:           x3 x4 x5 x6       -> scores x7
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """``inputs`` predict ``targets`` position by position; only the last ``scored`` predictions count."""

    inputs: list[int]
    targets: list[int]
    scored: int


def document_windows(conditioning: int, ids: list[int], *, context: int, stride: int | None = None) -> list[Window]:
    """Cut one document into windows (see the module docstring). ``stride`` defaults to ``context``."""
    if context < 1:
        raise ValueError(f"context must be at least 1 token, got {context}")
    stride = context if stride is None else stride
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be between 1 and the context ({context}), got {stride}")
    sequence = [conditioning, *ids]
    n = len(ids)
    windows = []
    for block_start in range(0, n, stride):
        last_target = min(block_start + stride, n)  # targets are s[block_start+1 .. last_target]
        first_input = max(0, last_target - context)
        windows.append(
            Window(
                inputs=sequence[first_input:last_target],
                targets=sequence[first_input + 1 : last_target + 1],
                scored=last_target - block_start,
            )
        )
    return windows
