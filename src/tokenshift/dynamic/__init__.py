"""Dynamic tokenization at inference: merge a batch's frequent token runs on the fly (batch-level BPE),
with input embeddings for the merged tokens from a transplant method; predictions stay in the base vocabulary."""

from .merges import DynamicVocabulary as DynamicVocabulary
from .merges import MergedBatch as MergedBatch
from .merges import learn_merges as learn_merges
from .merges import merge_texts as merge_texts
from .merges import merge_units as merge_units
from .score import DynamicResult as DynamicResult
from .score import evaluate_dynamic as evaluate_dynamic
from .score import evaluate_dynamic_loaded as evaluate_dynamic_loaded
from .generate import DynamicGeneration as DynamicGeneration
from .generate import generate_dynamic as generate_dynamic
