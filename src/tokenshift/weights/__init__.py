"""Model weights without loading the model: safetensors headers and single tensors (:mod:`.files`),
what a config says the weights hold (:mod:`.layout`), shards written a tensor at a time (:mod:`.write`),
and how much memory a run needs (:mod:`.memory`)."""

from .files import Checkpoint as Checkpoint
from .files import CheckpointError as CheckpointError
from .files import TensorEntry as TensorEntry
from .layout import ModelLayout as ModelLayout
from .layout import check_weights as check_weights
from .layout import load_layout as load_layout
from .layout import model_layout as model_layout
