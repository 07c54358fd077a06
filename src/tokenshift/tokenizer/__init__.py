"""The tokenizer abstraction every stage uses."""

from .core import EncodedText as EncodedText
from .core import SpecialTokens as SpecialTokens
from .core import Tokenizer as Tokenizer
from .core import byte_vocabulary as byte_vocabulary
from .load import load_tokenizer as load_tokenizer
