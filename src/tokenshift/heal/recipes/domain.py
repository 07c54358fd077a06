"""The recipe of ``tokenshift adapt``: the new input rows first (token distillation; the head stays
tied), then LoRA on the body and the new rows with the next-token loss on the domain's text, so that
the model also learns the domain, not only its new tokens.

Shares of the budget, :data:`SHARES`, chosen on the adaptation's validation pages: a quarter for the
rows, the rest for the body. fit-head (the output rows fitted on cached states, which unties the head)
was a third phase until it was measured paying too little for its time on 15-minute runs (validation
pages, bits per byte): SmolLM2-135M on the English manual pages −0.006 in 2.7 minutes and on the
handbook −0.008 in 2.1 minutes (against −0.011 a minute for lora-ntp), Gemma-3-270M on French manual
pages nothing in 4.5 minutes. Given its time instead, lora-ntp took the handbook's validation pages to
1.0304 bits per byte (1.0410 with fit-head); held-out rows: docs/benchmarks/adapt.md.
"""

from __future__ import annotations

from . import Recipe, register_recipe

SHARES = (("distill-rows", 0.25), ("lora-ntp", 0.75))

register_recipe(Recipe("domain", SHARES, "distill-rows, then lora-ntp: the new rows, then the body learns the domain's text"))
