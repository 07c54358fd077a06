"""Write safetensors shards one tensor at a time: the header is known before any data (every tensor's
dtype and shape are), so a shard is its header, then each tensor's bytes in turn, copied from a
source file's byte range in chunks or taken from a tensor in memory. Nothing holds a whole shard.

    [8-byte header length][header JSON, space-padded to 8 bytes][tensor 1][tensor 2]...

A shard with nothing to change is copied whole (``os.copy_file_range`` where the system has it) or
hard-linked.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import DTYPE_BYTES, SAFETENSORS_NAMES, TensorEntry

if TYPE_CHECKING:
    import torch

CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class OutTensor:
    """A tensor of a shard to write: copied byte for byte from ``source`` (a tensor in a file), or the
    bytes of an in-memory ``source`` tensor."""

    name: str
    dtype: str  # safetensors' name
    shape: tuple[int, ...]
    source: Any  # TensorEntry | torch.Tensor

    @property
    def nbytes(self) -> int:
        size = DTYPE_BYTES[self.dtype]
        for d in self.shape:
            size *= d
        return size

    @classmethod
    def copied(cls, entry: TensorEntry, name: str | None = None) -> OutTensor:
        return cls(name or entry.name, entry.dtype, entry.shape, entry)

    @classmethod
    def of(cls, name: str, tensor: torch.Tensor) -> OutTensor:
        return cls(name, SAFETENSORS_NAMES[str(tensor.dtype).removeprefix("torch.")], tuple(tensor.shape), tensor)


def shard_header(tensors: list[OutTensor], metadata: dict[str, str] | None = None) -> bytes:
    """The header bytes (length prefix included) of a shard holding ``tensors`` in this order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for tensor in tensors:
        header[tensor.name] = {"dtype": tensor.dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + tensor.nbytes]}
        offset += tensor.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # tensor data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text


def shard_bytes(tensors: list[OutTensor], metadata: dict[str, str] | None = None) -> int:
    """The size of the shard :func:`write_shard` writes."""
    return len(shard_header(tensors, metadata)) + sum(t.nbytes for t in tensors)


def write_shard(path: Path, tensors: list[OutTensor], metadata: dict[str, str] | None = None) -> int:
    """Write ``tensors`` as the safetensors file ``path``; return its size in bytes."""
    import torch

    with Path(path).open("wb") as out:
        out.write(shard_header(tensors, metadata))
        for tensor in tensors:
            if isinstance(tensor.source, TensorEntry):
                _copy_range(tensor.source.file, tensor.source.begin, tensor.nbytes, out)
            else:
                data: torch.Tensor = tensor.source.detach().to("cpu").contiguous()
                if tuple(data.shape) != tensor.shape or data.nbytes != tensor.nbytes:
                    raise AssertionError(f"{tensor.name}: header says {tensor.shape}, data is {tuple(data.shape)}")
                out.write(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
        return out.tell()


def _copy_range(source: Path, begin: int, length: int, out: Any) -> None:
    with Path(source).open("rb") as handle:
        handle.seek(begin)
        left = length
        while left:
            chunk = handle.read(min(CHUNK_BYTES, left))
            if not chunk:
                raise OSError(f"{source} ended {left:,} bytes early while copying")
            out.write(chunk)
            left -= len(chunk)


def copy_file(source: Path, target: Path, *, link: bool = False) -> bool:
    """Copy ``source`` to ``target`` whole (or hard-link it with ``link``; a copy where the two are on
    different file systems). Returns whether it was linked."""
    if link:
        try:
            os.link(source, target)
            return True
        except OSError:
            pass
    shutil.copyfile(source, target)
    return False
