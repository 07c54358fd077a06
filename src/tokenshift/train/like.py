"""``--like``: give a trained tokenizer the special tokens, roles, chat template and post-processor
of a model's tokenizer, so that it drops into that model's pipeline."""

from __future__ import annotations

import json
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.core import roles_from_names


def special_tokens_of(like: Tokenizer) -> list[str]:
    """The model tokenizer's special tokens in id order (they take the first ids when training)."""
    added = like.backend.get_added_tokens_decoder()
    return [token.content for _, token in sorted(added.items()) if token.special]


def _remap_ids(node: Any, old_to_new: dict[int, int], names: dict[int, str]) -> Any:
    """Rewrite the ``ids`` of TemplateProcessing's special-token table to the new vocabulary."""
    if isinstance(node, dict):
        if "ids" in node and "tokens" in node and isinstance(node["ids"], list):
            missing = [names.get(i, str(i)) for i in node["ids"] if i not in old_to_new]
            if missing:
                raise ValueError(f"the post-processor uses tokens missing from the new vocabulary: {missing}")
            return {**node, "ids": [old_to_new[i] for i in node["ids"]]}
        return {key: _remap_ids(value, old_to_new, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_remap_ids(item, old_to_new, names) for item in node]
    return node


def dress_like(trained: Any, like: Tokenizer, *, name: str) -> Tokenizer:
    """Wrap the trained backend with ``like``'s roles, BOS behaviour, chat template and post-processor."""
    from tokenizers import Tokenizer as Backend

    spec = json.loads(trained.to_str())
    like_spec = json.loads(like.backend.to_str())
    new_vocab = trained.get_vocab(with_added_tokens=True)
    old_vocab = like.backend.get_vocab(with_added_tokens=True)
    old_to_new = {old_id: new_vocab[token] for token, old_id in old_vocab.items() if token in new_vocab}
    names = {old_id: token for token, old_id in old_vocab.items()}
    if like_spec.get("post_processor") is not None:
        spec["post_processor"] = _remap_ids(like_spec["post_processor"], old_to_new, names)
    backend = Backend.from_str(json.dumps(spec, ensure_ascii=False))

    def role_name(token_id: int | None) -> str | None:
        return names.get(token_id) if token_id is not None else None

    special = like.special
    roles = roles_from_names(backend, bos=role_name(special.bos), eos=role_name(special.eos), pad=role_name(special.pad),
                             unk=role_name(special.unk), adds_bos=special.adds_bos, guess=False)
    return Tokenizer(backend, name=name, special=roles, chat_template=like.chat_template)
