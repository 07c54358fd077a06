"""``blend``: OMP through a donor's embedding space, averaged with the pieces' length-weighted mean.

The two estimates fail in different places. OMP (:mod:`.omp`) writes a token as a sparse combination
of shared anchors found in the donor's space, so a whole word the old model splits gets a row from
tokens that *mean* something close, but 8 anchors reconstruct only part of the donor row (relative
residual about 0.72 for Gemma-3 onto SmolLM2). The length-weighted piece mean (:mod:`.scaled`) keeps
the old model's own view of the spelling but says nothing about meaning. Their average,
``scale * (omp_weight * omp + (1 - omp_weight) * pieces)``, scored lower bits per byte on every language
than either alone.

Chosen on ``wiki-en/fr/es:validation`` (8,000 bytes each), SmolLM2-135M onto Gemma-3 with gemma3-270m as
donor, bits per byte; ``bench/transplant.py`` checks the choice on the test splits:

    omp_weight  scale=0.85               scale=0.92               scale=1.0
    0.4         1.0275 2.6764 2.7396     1.0195 2.6142 2.6660     1.0153 2.5824 2.6371
    0.5         1.0249 2.6760 2.7443     1.0168 2.6050 2.6595     1.0107 2.5601 2.6136
    0.6         1.0228 2.6752 2.7581     1.0150 2.6030 2.6622     1.0085 2.5515 2.6041
    0.7         1.0215 2.6784 2.7784     1.0145 2.6067 2.6783     1.0100 2.5583 2.6140

OMP alone scored 1.1746 / 2.9780 / 2.9895 there (before the document-start fix in ``plan.py``), the
length-weighted mean ×0.85 1.0902 / 2.8065 / 2.8217 (likewise). Unlike ``scaled`` the blend wants no
shrinking: the average of two rows that point apart is already shorter than either.

Without a donor the OMP half is the no-donor OMP of :mod:`.omp` (the subword mean re-expressed with
real tokens of the base space), so the method still runs, but the donor is what it is for.
"""

from __future__ import annotations

from typing import Any

from . import register
from .omp import omp_rows
from .subword import piece_mean


@register("blend", "donor-space OMP averaged with the length-weighted subword mean; lowest bits per byte with a donor", uses_donor=True)
def blend_rows(
    old: Any, plan: Any, *, donor: Any = None, omp_weight: float = 0.6, scale: float = 1.0, k: int = 8, candidates: int = 256,
) -> Any:
    """old: (V_old, D), donor: (V_new, D2) or None -> (n_composed, D)"""
    if not 0 <= omp_weight <= 1:
        raise ValueError(f"omp_weight must be in [0, 1], got {omp_weight}; 0 is the length-weighted mean, 1 is omp")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    pieces = piece_mean(old, plan, weights=plan.piece_bytes)
    if omp_weight == 0:
        return pieces * scale
    return scale * (omp_weight * omp_rows(old, plan, donor=donor, k=k, candidates=candidates) + (1 - omp_weight) * pieces)
