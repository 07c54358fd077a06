"""Train tokenizers: byte-level BPE, SuperBPE (superword tokens), vocabulary extension."""

from .run import TRAINERS as TRAINERS
from .run import TrainConfig as TrainConfig
from .run import TrainReport as TrainReport
from .run import train_tokenizer as train_tokenizer
