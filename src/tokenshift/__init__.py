"""tokenshift: free pretrained language models from their tokenizer.

The stages live in subpackages (``tokenizer``, ``assets``, ``data``, ``evaluate``, ``measure``);
importing this package imports neither torch nor transformers.
"""

__version__ = "0.1.0"
