"""Text sets that every command reads."""

from .texts import TextSet as TextSet
from .texts import load_texts as load_texts
from .texts import iter_documents as iter_documents
from .texts import count_documents as count_documents
