"""Heal a transplanted model: short training with next-token loss and/or cross-tokenizer distillation."""

from .align import Alignment as Alignment
from .align import align as align
from .config import HealConfig as HealConfig
from .config import Stage as Stage
from .config import parse_stages as parse_stages
from .run import HealReport as HealReport
from .run import heal as heal
