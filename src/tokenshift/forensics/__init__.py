"""Tokenizer forensics: what a BPE tokenizer's merge list says about the data it was trained on."""

from .merges import category_words as category_words
from .merges import merge_history as merge_history
from .mixture import MixtureResult as MixtureResult
from .mixture import infer_mixture as infer_mixture
from .mixture import solve_mixture as solve_mixture
from .pair_counts import PairTrajectory as PairTrajectory
from .pair_counts import pair_trajectory as pair_trajectory
