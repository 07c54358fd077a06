"""Evaluate models in tokenizer-agnostic units (bits per byte)."""

from .bpb import BitsPerByte as BitsPerByte
from .bpb import BpbResult as BpbResult
from .bpb import evaluate as evaluate
from .bpb import evaluate_loaded as evaluate_loaded
from .windows import document_windows as document_windows
