"""``scaled``: the pieces' rows weighted by byte length (to the power ``length_power``), then shrunk
towards zero by ``scale``.

Why shrink: a composed token's row serves as an output row too (tied heads), and the mean of its
pieces' rows scores it about as high as its pieces, although the whole token is rarer than its first
piece. Shrinking lowers those logits. Measured on ``wiki-en/fr:validation`` (SmolLM2-135M onto a 32k
wiki fr+en tokenizer, 4 KB each, bits per byte en / fr): subword mean 1.066 / 2.585, length-weighted
1.057 / 2.571, ×0.9 1.049 / 2.498, ×0.8 1.050 / 2.553, length-weighted ×0.85 1.043 / 2.521; the
default is 0.85. ``bench/transplant.py`` checks it on the test splits of three tokenizer pairs.

``length_power``: each piece weighs ``bytes ** length_power`` (1: by byte length, 0: the plain mean).
Extensions use 0 (see ``methods.EXTENSION_OPTIONS`` for the measurement): their composed tokens are
whole words of two or three pieces whose short endings ("s", "es", "ment") carry as much as the stem.
"""

from __future__ import annotations

from typing import Any

from . import register
from .subword import piece_mean


SUPERWORD_PIECES = ("all", "first+last")


@register("scaled", "length-weighted subword mean shrunk by scale (default 0.85); lowest bits per byte measured")
def scaled_rows(old: Any, plan: Any, *, donor: Any = None, scale: float = 0.85, length_power: float = 1.0,
                superword_pieces: str = "all") -> Any:
    """old: (V_old, D) -> (n_composed, D). ``superword_pieces``: which pieces a superword's row is
    built from (``plan.superword``: tokens spanning several words): ``all`` of them, or its ``first+last``
    piece only (see ``methods.EXTENSION_OPTIONS`` for the measurement)."""
    import torch

    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}; 1 gives the plain length-weighted mean")
    if not 0 <= length_power <= 4:
        raise ValueError(f"length_power must be in [0, 4], got {length_power}; 0 weighs every piece the same, 1 by its bytes")
    if superword_pieces not in SUPERWORD_PIECES:
        raise ValueError(f"superword_pieces {superword_pieces!r}: choose {' or '.join(SUPERWORD_PIECES)}")
    weights = torch.ones(len(plan.piece_ids), device=plan.piece_bytes.device) if length_power == 0 else plan.piece_bytes ** length_power
    if superword_pieces == "first+last" and bool(plan.superword.any()):
        segments = plan.piece_segments()
        position = plan.piece_positions().to(weights.device)
        count = (plan.piece_offsets[1:] - plan.piece_offsets[:-1])[segments].to(weights.device)
        middle = plan.superword.to(segments.device)[segments].to(weights.device) & (position > 1) & (position < count)
        weights = weights.masked_fill(middle, 0.0)
    return piece_mean(old, plan, weights=weights) * scale
