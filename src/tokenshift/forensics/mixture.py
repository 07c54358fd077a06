"""Data mixture inference (Hayase, Liu et al. 2024): what shares of each category a BPE tokenizer was
trained on, read from the order of its merges.

The trainer merged, at step t, the pair most frequent in its training data after merges 1..t-1. If
that data was a mixture with shares a_k of categories whose samples give pair counts c_k(p) per byte
(after applying the same t-1 merges), then for every other pair p

    sum_k a_k (c_k,t(m_t) - c_k,t(p)) >= 0          (m_t: the pair merged at step t)

Samples are finite and categories imperfect, so each step gets a slack v_t and each pair a slack v_p,
and the linear program is

    minimise   sum_t v_t + sum_p v_p
    subject to sum_k a_k (c_k,t(m_t) - c_k,t(p)) + v_t + v_p >= 0     for every step t and pair p != m_t
               sum_k a_k = 1,  a >= 0,  v >= 0

There are steps x pairs constraints (millions), almost all slack at the optimum, so they are
generated lazily: solve with the constraints found so far, replay the merges with the solution's
shares, add the (at most ``competitors`` per step) most violated ones, and solve again, until none is
violated. The replay keeps each pair's mixed count current with the per-merge changes of
:mod:`.pair_counts`. Solved with HiGHS (``highspy``), warm-started after each round of new rows.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

from .pair_counts import PairTrajectory

logger = logging.getLogger(__name__)

PER_MILLION = 1e6  # counts per million bytes: coefficients of order 1..1e4, well inside HiGHS's tolerances
TOLERANCE = 1e-6   # a constraint counts as violated past this many occurrences per million bytes


@dataclass(frozen=True)
class MixtureSolution:
    """The linear program's optimum. ``shares``: category -> share (sum 1); slacks in counts per
    million bytes; ``unseen_merges``: merges whose pair occurs in no sample at their step (no constraint)."""

    shares: dict[str, float]
    objective: float
    merge_slack: float
    pair_slack: float
    constraints: int
    pair_slacks: int
    rounds: int
    unseen_merges: int
    solver_seconds: float


@dataclass(frozen=True)
class MixtureResult:
    """What ``tokenshift infer-mixture`` prints. ``shares``: category -> estimated share of the
    tokenizer's training bytes (sum 1). The rest is the solver's account: merges read, constraints and
    pair slacks it needed, rounds of constraint generation, slack totals (counts per million bytes),
    each category's sample (bytes, pretokens), and where the time went."""

    tokenizer: str
    shares: dict[str, float]
    merges: int
    unseen_merges: int
    pairs: int
    constraints: int
    pair_slacks: int
    rounds: int
    objective: float
    merge_slack: float
    pair_slack: float
    sample_bytes: dict[str, int]
    sample_pretokens: dict[str, int]
    count_seconds: float
    solver_seconds: float
    seconds: float
    solver: str = ""
    texts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _no_banner() -> Iterator[None]:
    """HiGHS prints a banner on standard output (file descriptor 1, from C++) when the first model is
    made; drop it, so that it cannot corrupt ``--json``."""
    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, 1)
        yield
    finally:
        try:
            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError):
            pass
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)


def _new_model() -> Any:
    import highspy

    with _no_banner():
        model = highspy.Highs()
    model.setOptionValue("output_flag", False)
    return model


def solver_name() -> str:
    from importlib.metadata import version

    return f"HiGHS (highspy {version('highspy')})"


def solve_mixture(
    trajectory: PairTrajectory,
    *,
    competitors: int = 10,
    max_rounds: int = 1000,
    log: Callable[[str], None] | None = None,
) -> MixtureSolution:
    """Shares of the categories that best explain the merge order (the module docstring's program).
    ``competitors``: most violated pairs added per merge step and round."""
    import highspy

    if competitors < 1:
        raise ValueError(f"competitors must be at least 1, got {competitors}")
    k = len(trajectory.categories)
    steps = len(trajectory.merges)
    if k < 1 or steps < 1:
        raise ValueError("mixture inference needs at least one category and one merge")
    if not np.all(trajectory.sample_bytes > 0):
        empty = [c for c, b in zip(trajectory.categories, trajectory.sample_bytes) if b <= 0]
        raise ValueError(f"categories with an empty sample: {', '.join(empty)}; give each category some text")
    scale = PER_MILLION / trajectory.sample_bytes
    initial = trajectory.initial * scale
    deltas = [values * scale for values in trajectory.delta_values]
    inf = highspy.kHighsInf

    model = _new_model()
    # columns: shares a_0..a_k-1, step slacks v_0..v_T-1, then pair slacks as they are needed
    model.addCols(k, np.zeros(k), np.zeros(k), np.ones(k), 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    model.addCols(steps, np.ones(steps), np.zeros(steps), np.full(steps, inf), 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    model.addRows(1, np.ones(1), np.ones(1), k, np.zeros(1, np.int32), np.arange(k, dtype=np.int32), np.ones(k))
    pair_column: dict[int, int] = {}
    added: set[tuple[int, int]] = set()
    shares = np.full(k, 1.0 / k)
    step_slack = np.zeros(steps)
    pair_slack = np.zeros(trajectory.n_pairs)
    solver_seconds = 0.0
    unseen = 0
    rounds = 0
    objective = 0.0
    for rounds in range(1, max_rounds + 1):
        counts = initial.copy()
        mixed = counts @ shares - pair_slack  # what pair p must not exceed, once its own slack is spent
        starts: list[int] = []
        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        new_pairs: list[int] = []
        nnz = 0
        unseen = 0
        for t in range(steps):
            m = int(trajectory.merge_ids[t])
            merged = counts[m]
            if merged.max() <= 0:
                unseen += 1
            else:
                cutoff = float(merged @ shares) + step_slack[t] + TOLERANCE
                over = np.flatnonzero(mixed > cutoff)
                over = over[over != m]
                if over.size:
                    if over.size > competitors:
                        over = over[np.argpartition(mixed[over], -competitors)[-competitors:]]
                    for p in over.tolist():
                        if (t, p) in added:
                            continue  # held by the last solve to within its tolerance
                        added.add((t, p))
                        column = pair_column.get(p)
                        if column is None:
                            column = pair_column[p] = k + steps + len(pair_column)
                            new_pairs.append(p)
                        starts.append(nnz)
                        indices.append(np.concatenate([np.arange(k), [k + t, column]]).astype(np.int32))
                        values.append(np.concatenate([merged - counts[p], [1.0, 1.0]]))
                        nnz += k + 2
            ids = trajectory.delta_ids[t]
            if ids.size:
                counts[ids] += deltas[t]
                mixed[ids] += deltas[t] @ shares
        if not starts:
            break
        n_new = len(new_pairs)
        if n_new:
            model.addCols(n_new, np.ones(n_new), np.zeros(n_new), np.full(n_new, inf), 0,
                          np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        model.addRows(len(starts), np.zeros(len(starts)), np.full(len(starts), inf), nnz, np.asarray(starts, dtype=np.int32),
                      np.concatenate(indices), np.concatenate(values))
        began = time.perf_counter()
        model.run()
        solver_seconds += time.perf_counter() - began
        status = model.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"the mixture linear program ended {model.modelStatusToString(status)} after {rounds} rounds; "
                               "rerun with fewer --merges or report the tokenizer and samples")
        solution = np.asarray(model.getSolution().col_value)
        shares = np.clip(solution[:k], 0.0, None)
        shares = shares / shares.sum()
        step_slack = solution[k : k + steps]
        for p, column in pair_column.items():
            pair_slack[p] = solution[column]
        objective = float(model.getInfo().objective_function_value)
        if log is not None:
            log(f"round {rounds}: +{len(starts):,} constraints ({len(added):,} in all), objective {objective:.4g}, "
                + ", ".join(f"{c} {s:.4f}" for c, s in zip(trajectory.categories, shares)))
    else:
        logger.warning("constraint generation stopped after %d rounds with constraints still violated", max_rounds)
    return MixtureSolution(
        shares={c: float(s) for c, s in zip(trajectory.categories, shares)}, objective=objective,
        merge_slack=float(np.clip(step_slack, 0, None).sum()), pair_slack=float(np.clip(pair_slack, 0, None).sum()),
        constraints=len(added), pair_slacks=len(pair_column), rounds=rounds, unseen_merges=unseen, solver_seconds=solver_seconds,
    )


def infer_mixture(
    tokenizer: Any,
    categories: Mapping[str, str | Sequence[str]],
    *,
    merges: int = 1000,
    max_bytes: int | None = None,
    competitors: int = 10,
    log: Callable[[str], None] | None = None,
) -> MixtureResult:
    """Estimate the shares of ``categories`` in the training data of BPE ``tokenizer``.

    ``tokenizer``: a :class:`~tokenshift.tokenizer.Tokenizer` or anything :func:`load_tokenizer`
    takes. ``categories``: name -> a text spec (``wiki-fr:validation``, a file, a folder, a glob) or a
    list of documents: a sample of that category, ideally not text the tokenizer was trained on.
    ``merges``: how many of the first merges to read (the paper reads 3,000; 1,000 already separate
    languages). ``max_bytes``: the leading documents of each sample, up to this many bytes.
    Shares are of bytes: counts are normalised by each sample's UTF-8 bytes.
    """
    from ..data import load_texts
    from ..tokenizer import Tokenizer, load_tokenizer
    from .merges import category_words, merge_history
    from .pair_counts import pair_trajectory

    if merges < 1:
        raise ValueError(f"merges must be a positive number, got {merges}")
    if len(categories) < 2:
        raise ValueError(f"mixture inference needs at least two categories, got {len(categories)}; "
                         "pass --category NAME=TEXT once per category (e.g. en=wiki-en:validation fr=wiki-fr:validation)")
    started = time.perf_counter()
    documents: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for name, spec in categories.items():
        if isinstance(spec, str):
            loaded = load_texts(spec, max_bytes=max_bytes)
            documents[name] = loaded.documents
            texts[name] = spec
        else:
            docs = list(spec)
            if max_bytes is not None:
                from ..data import TextSet

                docs = TextSet(name, docs).limit_bytes(max_bytes).documents
            documents[name] = docs
            texts[name] = f"{len(docs)} documents"
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)
    history = merge_history(tok, merges)
    if len(history) < merges:
        logger.warning("tokenizer %s has %d merges; reading all of them, not %d", tok.name, len(history), merges)
    words = {name: category_words(tok, docs) for name, docs in documents.items()}
    sizes = {name: sum(len(d.encode("utf-8")) for d in docs) for name, docs in documents.items()}
    empty = [name for name, size in sizes.items() if size == 0]
    if empty:
        raise ValueError(f"category {', '.join(empty)} has no text; give each category a non-empty sample")
    trajectory = pair_trajectory(words, history, sample_bytes=sizes)
    count_seconds = time.perf_counter() - started
    if log is not None:
        log(f"{len(history):,} merges, {trajectory.n_pairs:,} pairs counted in {count_seconds:.1f} s")
    solution = solve_mixture(trajectory, competitors=competitors, log=log)
    return MixtureResult(
        tokenizer=tok.name, shares=solution.shares, merges=len(history), unseen_merges=solution.unseen_merges,
        pairs=trajectory.n_pairs, constraints=solution.constraints, pair_slacks=solution.pair_slacks, rounds=solution.rounds,
        objective=solution.objective, merge_slack=solution.merge_slack, pair_slack=solution.pair_slack,
        sample_bytes=sizes, sample_pretokens={c: int(n) for c, n in zip(trajectory.categories, trajectory.words)},
        count_seconds=count_seconds, solver_seconds=solution.solver_seconds, seconds=time.perf_counter() - started,
        solver=solver_name(), texts=texts,
    )
