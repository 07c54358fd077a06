"""Export a model and its tokenizer to one GGUF file for llama.cpp (llama, qwen2 and gemma3 architectures)."""

from .architectures import ARCHITECTURES as ARCHITECTURES
from .dtypes import DTYPES as DTYPES
from .gguf_writer import ExportReport as ExportReport
from .gguf_writer import export_gguf as export_gguf
from .pre import choose_pre as choose_pre
from .read_back import load_gguf as load_gguf
