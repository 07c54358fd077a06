"""Domain adaptation in one call: extend the model's own tokenizer on the user's text (subwords and
superwords), transplant, heal, and judge on documents never seen (:func:`adapt`)."""

from .run import AdaptConfig as AdaptConfig
from .run import AdaptReport as AdaptReport
from .run import AdaptRow as AdaptRow
from .run import adapt as adapt
