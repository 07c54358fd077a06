"""Transplant a new tokenizer onto a pretrained model, training-free."""

from .methods import METHODS as METHODS
from .plan import TransplantPlan as TransplantPlan
from .plan import build_plan as build_plan
from .run import TransplantConfig as TransplantConfig
from .run import TransplantReport as TransplantReport
from .run import transplant as transplant
from .run import transplant_folder as transplant_folder
