"""The recipe of ``tokenshift adapt``: the new rows first (token distillation of the input rows, the
output rows fitted on cached states), then LoRA on the body and the new rows with the next-token loss
on the domain's text, so that the model also learns the domain, not only its new tokens. Shares of
the budget: see :data:`SHARES` (chosen on the adaptation's validation documents, docs/benchmarks/adapt.md)."""

from __future__ import annotations

from . import Recipe, register_recipe

SHARES = (("distill-rows", 0.25), ("fit-head", 0.25), ("lora-ntp", 0.5))

register_recipe(Recipe("domain", SHARES, "distill-rows, fit-head, then lora-ntp: new rows, then the body learns the domain's text"))
