"""Next-token distributions of many token sequences that share a long prefix, in one forward pass.

The prefix (the tokens every hypothesis agrees on) lives in one KV cache. The hypotheses' own
suffixes are packed into a single row after it and attend through a tree mask: each suffix token
sees the whole prefix and the earlier tokens of its own suffix, nothing else::

    cache:  c0 c1 c2 ... cP-1 | packed: a0 a1 | b0 | d0 d1 d2
    a1 sees c*, a0, a1       positions: P P+1 | P  | P  P+1 P+2
    b0 sees c*, b0

Afterwards the cache is cut back to the prefix, so the suffixes never enter it. Sliding-window
layers get the same mask limited to the window (query position - key position < window).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)


class PrefixForward:
    """A causal LM with a KV cache over a growing shared prefix.

    ``model``: a Hugging Face causal LM. The cache keeps every layer at full length (no sliding-window
    eviction), so that a suffix can be run and cut off again at any point.
    """

    def __init__(self, model: Any, *, device: str, first_token: int) -> None:
        from transformers import DynamicCache

        self.model = model
        self.device = device
        self.cache = DynamicCache()
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        types = list(getattr(config, "layer_types", None) or [])
        self.sliding_window = getattr(config, "sliding_window", None) if "sliding_attention" in types else None
        self.mask_by_type = bool(types) and "sliding_attention" in types
        self.max_positions = int(getattr(config, "max_position_embeddings", 0) or 0)
        self.length = 0
        self.forwards = 0
        self.tokens_forwarded = 0
        self.last_logits: Any = None
        self.pending: list[int] = [int(first_token)]

    def _mask(self, query_pos: Any, key_pos: Any, allowed: Any, window: int | None) -> Any:
        """Additive float mask (1, 1, Q, K) from a boolean ``allowed`` (Q, K) and the sliding window."""
        import torch

        if window is not None:
            allowed = allowed & ((query_pos[:, None] - key_pos[None, :]) < window)
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask[None, None]

    def _run(self, tokens: list[int], positions: list[int], seen: Any, keep: list[int]) -> Any:
        """Forward ``tokens`` after the cache; ``seen`` (Q, Q) bool says which packed tokens each one sees.

        Returns float32 logits (len(keep), vocab) at the packed indices ``keep``.
        """
        import torch

        if self.max_positions and max(positions) >= self.max_positions:
            raise ValueError(
                f"text longer than the model's {self.max_positions} positions; score shorter documents "
                "(e.g. --max-bytes) or cut them into pieces first"
            )
        query = torch.tensor(positions, device=self.device)
        key = torch.cat([torch.arange(self.length, device=self.device), query])
        allowed = torch.cat([torch.ones(len(tokens), self.length, dtype=torch.bool, device=self.device), seen], dim=1)
        full = self._mask(query, key, allowed, None)
        mask: Any = full
        if self.mask_by_type:
            mask = {"full_attention": full, "sliding_attention": self._mask(query, key, allowed, self.sliding_window)}
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([tokens], device=self.device),
                position_ids=query[None],
                attention_mask=mask,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=torch.tensor(keep, device=self.device),
            )
        self.forwards += 1
        self.tokens_forwarded += len(tokens)
        return out.logits[0].float()

    def _truncate(self, length: int) -> None:
        for layer in self.cache.layers:
            if getattr(layer, "is_initialized", True) and layer.keys is not None and layer.keys.numel():
                layer.keys = layer.keys[..., :length, :]
                layer.values = layer.values[..., :length, :]

    def commit(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the shared prefix. They run with the next :meth:`next_logits` call."""
        self.pending.extend(int(t) for t in tokens)

    def next_logits(self, suffixes: Sequence[Sequence[int]]) -> Any:
        """Logits (len(suffixes), vocab), float32, of the token after prefix + each suffix.

        The committed tokens not yet in the cache and every non-empty suffix run packed in one
        forward; the cache then keeps the committed tokens and drops the suffixes. An empty suffix
        is the prefix itself, whose logits are kept from the forward that last extended it.
        """
        import torch

        pending = self.pending
        tokens: list[int] = list(pending)
        positions: list[int] = list(range(self.length, self.length + len(pending)))
        owner: list[int] = [-1] * len(pending)  # -1: committed, seen by every later token
        keep: list[int] = [len(pending) - 1] if pending else []
        live: list[int] = []
        base = self.length + len(pending)
        for i, suffix in enumerate(suffixes):
            if not suffix:
                continue
            for depth, token in enumerate(suffix):
                tokens.append(int(token))
                positions.append(base + depth)
                owner.append(i)
            keep.append(len(tokens) - 1)
            live.append(i)
        if tokens:
            own = torch.tensor(owner, device=self.device)
            index = torch.arange(len(tokens), device=self.device)
            same = (own[:, None] == own[None, :]) | (own[None, :] == -1)
            seen = same & (index[None, :] <= index[:, None])
            try:
                logits = self._run(tokens, positions, seen, keep)
            finally:
                self._truncate(base)
            self.length = base
            self.pending = []
            if pending:
                self.last_logits = logits[0]
                logits = logits[1:]
        rows = [self.last_logits] * len(suffixes)
        for row, i in enumerate(live):
            rows[i] = logits[row]
        return torch.stack(rows)
