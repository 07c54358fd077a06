"""One tokenizer abstraction for every stage: ids with byte offsets, vocabulary as bytes, special-token roles."""

from __future__ import annotations

import copy

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bytemap import byte_level_to_bytes, metaspace_to_bytes

if TYPE_CHECKING:
    import tokenizers

logger = logging.getLogger(__name__)

# Names under which models spell their chat-turn markers; used to give those tokens the role "chat".
CHAT_MARKERS = (
    "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endofprompt|>",
)
# Tokens that separate documents in pretraining, in order of preference, for tokenizers without a BOS.
DOCUMENT_SEPARATORS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")

# Encoding more text than this (characters) runs where Ctrl-C can interrupt the wait.
INTERRUPTIBLE_CHARS = 1 << 18


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the tokens with a role. ``adds_bos``: the tokenizer puts BOS in front by default."""

    bos: int | None = None
    eos: int | None = None
    pad: int | None = None
    unk: int | None = None
    adds_bos: bool = False
    chat: dict[str, int] = field(default_factory=dict)
    all_special: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EncodedText:
    """Token ids of a text with each token's byte span ``[start, end)`` in the text's UTF-8 bytes.

    Where a character is split across tokens and the backend cannot say which bytes each one holds,
    those tokens share the character's span (``exact_offsets`` is then False).
    """

    ids: list[int]
    starts: list[int]
    ends: list[int]
    exact_offsets: bool


class Tokenizer:
    """A tokenizer backed by a Hugging Face ``tokenizers.Tokenizer``.

    Every source (tokenizer.json, model folder or id, tiktoken ranks, GGUF vocabulary) is converted to
    that one backend, so encoding runs in Rust everywhere. ``encode`` never adds special tokens; the
    caller adds BOS (see :meth:`conditioning_token`) where it wants one.
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        name: str,
        special: SpecialTokens,
        source: str = "",
        chat_template: str | None = None,
    ) -> None:
        self.backend = backend
        self.name = name
        self.special = special
        self.source = source or name
        self.chat_template = chat_template

    def replaced(self, *, name: str | None = None, chat_template: str | None = None) -> Tokenizer:
        """A copy with a new ``name`` and/or ``chat_template``; the caller's tokenizer is left as it
        was (the backend is shared: it is never mutated in place)."""
        twin = copy.copy(self)
        if name is not None:
            twin.name = name
        if chat_template is not None:
            twin.chat_template = chat_template
        return twin

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, kind={self.kind!r})"

    @cached_property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the highest id + 1). The backend is never mutated
        in place (extension builds a new one), so this is computed once."""
        vocab = self.backend.get_vocab(with_added_tokens=True)
        return max(vocab.values()) + 1 if vocab else 0

    @cached_property
    def kind(self) -> str:
        """``byte-level`` (GPT-2 style Ġ spellings) or ``metaspace`` (SentencePiece style ▁ and <0xNN>)."""
        spec = json.loads(self.backend.to_str())
        text = json.dumps({k: spec.get(k) for k in ("pre_tokenizer", "decoder", "normalizer")})
        return "byte-level" if '"ByteLevel"' in text else "metaspace"

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of each text. Large inputs are encoded in a worker thread, so that Ctrl-C need not wait
        for the Rust encoder (minutes on tens of MB)."""
        def encode() -> list[list[int]]:
            return [enc.ids for enc in self.backend.encode_batch(texts, add_special_tokens=False)]

        if sum(map(len, texts)) < INTERRUPTIBLE_CHARS:
            return encode()
        from ..signals import interruptible

        return interruptible(encode)

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=False)

    def encode_with_offsets(self, text: str) -> EncodedText:
        """Ids and byte spans. Exact where the tokens' bytes concatenate to the text's bytes."""
        encoding = self.backend.encode(text, add_special_tokens=False)
        ids = encoding.ids
        pieces = [self.token_bytes(i) for i in ids]
        data = text.encode("utf-8")
        if all(p is not None for p in pieces) and b"".join(pieces) == data:  # type: ignore[arg-type]
            starts, ends, pos = [], [], 0
            for piece in pieces:
                starts.append(pos)
                pos += len(piece)  # type: ignore[arg-type]
                ends.append(pos)
            return EncodedText(ids, starts, ends, exact_offsets=True)
        char_to_byte = [0]
        for char in text:
            char_to_byte.append(char_to_byte[-1] + len(char.encode("utf-8")))
        starts = [char_to_byte[s] for s, _ in encoding.offsets]
        ends = [char_to_byte[e] for _, e in encoding.offsets]
        return EncodedText(ids, starts, ends, exact_offsets=False)

    @cached_property
    def _vocab_bytes(self) -> list[bytes | None]:
        vocab = self.backend.get_vocab(with_added_tokens=True)
        table: list[bytes | None] = [None] * self.vocab_size
        added = {tok.content for tok in self.backend.get_added_tokens_decoder().values()}
        byte_level = self.kind == "byte-level"
        for token, idx in vocab.items():
            if token in added:
                table[idx] = token.encode("utf-8")
            elif byte_level:
                table[idx] = byte_level_to_bytes(token)
            else:
                table[idx] = metaspace_to_bytes(token)
        return table

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes a token stands for (special tokens: their UTF-8 spelling); None for unused ids."""
        return self._vocab_bytes[token_id] if 0 <= token_id < len(self._vocab_bytes) else None

    def vocab_bytes(self) -> list[bytes | None]:
        """``vocab_bytes()[id]`` is :meth:`token_bytes` of ``id``; holes in the id range are None."""
        return list(self._vocab_bytes)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)

    def padding_token(self) -> int:
        """The id that pads a batch: PAD where the tokenizer has one, else the conditioning token
        (padded positions are masked, so any id serves)."""
        return self.special.pad if self.special.pad is not None else self.conditioning_token()

    def conditioning_token(self) -> int:
        """The token every document is conditioned on: BOS where the tokenizer adds one by default,
        else the pretraining document separator (``<|endoftext|>`` and kin), else EOS, else BOS."""
        special = self.special
        if special.adds_bos and special.bos is not None:
            return special.bos
        for name in DOCUMENT_SEPARATORS:
            # token_to_id, not get_vocab(): building the vocabulary dict costs ~30 ms, and heal asks
            # once per piece of text (a third of distill-rows' time went there)
            idx = self.backend.token_to_id(name)
            if idx is not None:
                return idx
        for candidate in (special.eos, special.bos):
            if candidate is not None:
                return candidate
        raise ValueError(
            f"tokenizer {self.name!r} has no BOS, EOS or document separator to condition a document on; "
            "name one as bos_token or eos_token in its tokenizer_config.json (evaluate also takes --bos-token TOKEN)"
        )

    def token_id(self, token: str) -> int:
        idx = self.backend.token_to_id(token)
        if idx is None:
            raise ValueError(f"token {token!r} is not in the vocabulary of tokenizer {self.name!r}")
        return idx

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` and a ``tokenizer_config.json`` naming the special tokens by role."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / "tokenizer.json"))
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": self.special.adds_bos}
        for role in ("bos", "eos", "pad", "unk"):
            idx = getattr(self.special, role)
            if idx is not None:
                config[f"{role}_token"] = self.backend.id_to_token(idx)
        if self.chat_template:
            from .load import check_chat_template

            check_chat_template(self.chat_template, f"tokenizer {self.name!r} ({self.source or 'built here'})")
            config["chat_template"] = self.chat_template
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def roles_from_names(
    backend: tokenizers.Tokenizer,
    *,
    bos: str | None = None,
    eos: str | None = None,
    pad: str | None = None,
    unk: str | None = None,
    adds_bos: bool | None = None,
    guess: bool = True,
) -> SpecialTokens:
    """Build :class:`SpecialTokens` from role names (as in tokenizer_config.json).

    With ``guess``, a missing BOS/EOS is guessed from the usual special-token names (only among added
    tokens, never ordinary vocabulary). ``adds_bos`` None means: ask the backend's post-processor.
    """
    vocab = backend.get_vocab(with_added_tokens=True)
    added = backend.get_added_tokens_decoder()
    added_ids = {tok.content: idx for idx, tok in added.items()}

    def lookup(name: str | None) -> int | None:
        return vocab.get(name) if name else None

    def first_added(names: tuple[str, ...]) -> int | None:
        return next((added_ids[t] for t in names if t in added_ids), None) if guess else None

    bos_id = lookup(bos) if bos else first_added(("<|begin_of_text|>", "<bos>", "<s>", "<|startoftext|>"))
    eos_id = lookup(eos) if eos else first_added(("<|end_of_text|>", "<eos>", "</s>", "<|endoftext|>"))
    if adds_bos is None:
        probe = backend.encode("a", add_special_tokens=True).ids
        adds_bos = bool(probe) and bos_id is not None and probe[0] == bos_id and len(probe) > len(backend.encode("a", add_special_tokens=False).ids)
    chat = {tok.content: idx for idx, tok in added.items() if tok.content in CHAT_MARKERS}
    specials = tuple(sorted(idx for idx, tok in added.items() if tok.special))
    return SpecialTokens(
        bos=bos_id, eos=eos_id, pad=lookup(pad), unk=lookup(unk), adds_bos=adds_bos, chat=chat, all_special=specials
    )


def byte_vocabulary(tokenizer: Tokenizer) -> dict[bytes, int]:
    """Byte string -> lowest id spelling it; special tokens and unused ids left out (Ġ, ▁ and <0xNN>
    spellings are already raw bytes here)."""
    specials = set(tokenizer.special.all_special)
    table: dict[bytes, int] = {}
    for token_id, data in enumerate(tokenizer.vocab_bytes()):
        if data is None or token_id in specials:
            continue
        table.setdefault(data, token_id)
    return table
