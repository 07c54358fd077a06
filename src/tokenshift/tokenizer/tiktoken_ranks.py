"""Turn a tiktoken ranks file (base64 token, rank per line) into a Hugging Face BPE tokenizer.

tiktoken stores only ranks; BPE merges are recovered by re-running BPE on each token with the ranks
below its own: the last merge that builds it names the pair. Because tiktoken checks whole pieces
against the vocabulary before merging, the HF model is built with ``ignore_merges=True`` to match.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from .bytemap import bytes_to_byte_level

if TYPE_CHECKING:
    import tokenizers

# Pretokenization patterns of the known encodings (tiktoken's own ``pat_str``).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# Known encodings by number of ranks: (name, pattern, special tokens).
KNOWN_ENCODINGS: dict[int, tuple[str, str, dict[str, int]]] = {
    50256: ("gpt2", GPT2_PATTERN, {"<|endoftext|>": 50256}),
    100256: (
        "cl100k_base",
        CL100K_PATTERN,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    ),
    199998: ("o200k_base", O200K_PATTERN, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
}


def read_ranks(path: Path) -> dict[bytes, int]:
    """Read ``token_base64 rank`` lines (plain or .gz)."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ranks: dict[bytes, int] = {}
    for line_number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as exc:
            raise ValueError(f"{path}:{line_number} is not a tiktoken ranks line ('<base64> <rank>'): {line[:60]!r}") from exc
    return ranks


def _merge_pair(token: bytes, ranks: dict[bytes, int], max_rank: int) -> tuple[bytes, bytes]:
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_index, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_index, best_rank = i, rank
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} cannot be built from lower-ranked tokens; the ranks file is not a BPE vocabulary")
    return parts[0], parts[1]


def ranks_to_backend(ranks: dict[bytes, int], *, pattern: str, special_tokens: dict[str, int]) -> tokenizers.Tokenizer:
    """A byte-level BPE ``tokenizers.Tokenizer`` that encodes exactly as tiktoken does with these ranks."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {bytes_to_byte_level(token): rank for token, rank in ranks.items()}
    # Special ids may leave holes (cl100k: 100257-100260, then 100276); placing them in the model's
    # vocabulary first keeps their ids when they are registered as special tokens below.
    vocab.update(special_tokens)
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            left, right = _merge_pair(token, ranks, rank)
            merges.append((bytes_to_byte_level(left), bytes_to_byte_level(right)))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    for content, idx in sorted(special_tokens.items(), key=lambda item: item[1]):
        backend.add_special_tokens([AddedToken(content, special=True, normalized=False)])
        assert backend.token_to_id(content) == idx, f"special token {content} landed on the wrong id"
    return backend


def load_tiktoken_file(path: Path, *, pattern: str | None = None, special_tokens: dict[str, int] | None = None) -> tuple[str, tokenizers.Tokenizer]:
    """Load a ranks file; the pattern and specials default to those of the known encoding of that size."""
    ranks = read_ranks(path)
    known = KNOWN_ENCODINGS.get(len(ranks))
    if pattern is None:
        if known is None:
            raise ValueError(
                f"{path} has {len(ranks)} ranks, which matches no known encoding (gpt2, cl100k_base, o200k_base); "
                "pass its pretokenization regex with pattern=..."
            )
        pattern = known[1]
    if special_tokens is None:
        special_tokens = known[2] if known else {}
    name = known[0] if known else Path(path).name.split(".")[0]
    return name, ranks_to_backend(ranks, pattern=pattern, special_tokens=special_tokens)
