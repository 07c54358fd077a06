"""Measure tokenizers: compression, fertility, Rényi efficiency, token premium, shared vocabulary, digits."""

from .baseline import BaselineSavings as BaselineSavings
from .baseline import savings_against as savings_against
from .baseline import stage1_baseline as stage1_baseline
from .compare import VocabularyComparison as VocabularyComparison
from .compare import changed_token_share as changed_token_share
from .compare import compare_tokenizers as compare_tokenizers
from .compare import shared_byte_tokens as shared_byte_tokens
from .digits import digit_scheme as digit_scheme
from .metrics import TokenizerMeasurement as TokenizerMeasurement
from .metrics import TokenPremium as TokenPremium
from .metrics import measure_tokenizer as measure_tokenizer
from .metrics import token_premium as token_premium
