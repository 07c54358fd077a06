"""Loading causal language models."""

from .load import LoadedModel as LoadedModel
from .load import load_model as load_model
