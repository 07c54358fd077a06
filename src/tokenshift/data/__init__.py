"""Text sets that every command reads."""

from .texts import TextSet as TextSet
from .texts import load_texts as load_texts
