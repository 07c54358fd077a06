"""A model folder's safetensors files, read without loading them: every header checked, every tensor
found by name, one tensor read at a time.

    model-00001-of-00004.safetensors   [8-byte header length][header JSON][tensor bytes ...]
    model-00002-of-00004.safetensors   ...
    model.safetensors.index.json       {"weight_map": {tensor name: file}}   (absent for one file)

:class:`Checkpoint` answers which file holds a tensor, its dtype, shape and byte range; nothing of the
tensors themselves is read until :meth:`Checkpoint.read` asks for one. Reads use plain file reads into
a fresh buffer rather than a memory map, so a tensor costs its own bytes and nothing stays mapped
(a map's touched pages count in the process's resident memory until it is closed).

Every check names the file and the fix in one line (:class:`CheckpointError`): a header that is not
JSON, offsets that overlap, run past the file or disagree with the dtype and shape, unknown dtypes,
negative shapes, an index naming files or tensors that are not there, one tensor in two files.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# Bytes per element of every dtype the safetensors format defines.
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
TORCH_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64", "I64": "int64", "I32": "int32",
               "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
               "U16": "uint16", "U32": "uint32", "U64": "uint64"}
SAFETENSORS_NAMES = {torch_name: name for name, torch_name in TORCH_NAMES.items()}
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
_FIX = "write it again (rerun the command that made it, or download it again)"


class CheckpointError(ValueError):
    """A model folder's weights are not what they claim to be (one line: the file, the problem, the fix)."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor in a safetensors file: ``begin``/``end`` are absolute byte offsets in ``file``."""

    name: str
    file: Path
    dtype: str  # safetensors' name: BF16, F32, ...
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def torch_dtype(self) -> str:
        return TORCH_NAMES[self.dtype]


@dataclass(frozen=True)
class FileHeader:
    """A safetensors file's header: its tensors in byte order, its metadata, where data starts."""

    path: Path
    entries: dict[str, TensorEntry]
    metadata: dict[str, str]
    data_start: int
    size: int


def read_header(path: Path) -> FileHeader:
    """Parse and check ``path``'s header without reading any tensor (see the module docstring)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is damaged: {size} bytes, too short for a safetensors header; {_FIX}")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise CheckpointError(f"{path} is damaged: its header claims {length:,} bytes but the file has {size:,}; "
                                  f"it was cut short; {_FIX}")
        if length > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path} is damaged: a {length:,}-byte header (safetensors allows {MAX_HEADER_BYTES:,}); {_FIX}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is damaged: its header is not JSON; not a safetensors file, or overwritten; {_FIX}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is damaged: its header is not a table of tensors; {_FIX}")
    data_start = 8 + length
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} is damaged: its __metadata__ is not a table; {_FIX}")
    entries = [_entry(path, name, spec, data_start) for name, spec in header.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    position = data_start
    for entry in entries:
        if entry.begin < position:
            raise CheckpointError(f"{path} is damaged: tensor {entry.name!r} overlaps the tensor before it; {_FIX}")
        position = entry.end
    if position > size:
        raise CheckpointError(f"{path} is damaged: its tensors need {position:,} bytes but the file has {size:,}; "
                              f"it was cut short; {_FIX}")
    return FileHeader(path=path, entries={e.name: e for e in entries}, metadata={str(k): str(v) for k, v in metadata.items()},
                      data_start=data_start, size=size)


def _entry(path: Path, name: str, spec: Any, data_start: int) -> TensorEntry:
    where = f"{path} is damaged: tensor {name!r}"
    if not isinstance(spec, dict):
        raise CheckpointError(f"{where} has no dtype, shape and offsets; {_FIX}")
    dtype, shape, offsets = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise CheckpointError(f"{where} has dtype {dtype!r}, which safetensors does not define ({', '.join(DTYPE_BYTES)}); {_FIX}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**48 for d in shape):
        raise CheckpointError(f"{where} has shape {shape!r}: not a list of sizes from 0 to 2^48; {_FIX}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and 0 <= o < 2**62 for o in offsets) or offsets[0] > offsets[1]):
        raise CheckpointError(f"{where} has data_offsets {offsets!r}: not [begin, end] with 0 <= begin <= end; {_FIX}")
    needed = math.prod(shape) * DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != needed:
        raise CheckpointError(f"{where} is {dtype} of shape {shape} ({needed:,} bytes) but its offsets span "
                              f"{offsets[1] - offsets[0]:,} bytes; {_FIX}")
    return TensorEntry(name=name, file=path, dtype=dtype, shape=tuple(shape), begin=data_start + offsets[0], end=data_start + offsets[1])


READ_CHUNK_BYTES = 64 * 2**20


def read_entry(entry: TensorEntry, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The tensor ``entry`` names, read into a new CPU tensor (no memory map), in its stored dtype or
    converted to ``dtype``. A conversion reads the file in chunks into the converted tensor, so memory
    never holds the stored copy and the converted one together."""
    import torch

    stored = getattr(torch, entry.torch_dtype)
    if dtype is None or dtype == stored or not entry.shape:
        buffer = torch.empty(entry.nbytes, dtype=torch.uint8)
        with entry.file.open("rb") as handle:
            handle.seek(entry.begin)
            _read_into(handle, memoryview(buffer.numpy()), entry)
        tensor = buffer.view(stored).reshape(entry.shape)
        return tensor if dtype is None else tensor.to(dtype)
    out = torch.empty(entry.shape, dtype=dtype)
    flat = out.view(-1)
    itemsize = DTYPE_BYTES[entry.dtype]
    step = max(1, READ_CHUNK_BYTES // itemsize)
    chunk = torch.empty(step * itemsize, dtype=torch.uint8)
    with entry.file.open("rb") as handle:
        handle.seek(entry.begin)
        for start in range(0, entry.numel, step):
            count = min(step, entry.numel - start)
            _read_into(handle, memoryview(chunk.numpy())[: count * itemsize], entry)
            flat[start:start + count] = chunk[: count * itemsize].view(stored)
    return out


def _read_into(handle: Any, view: memoryview, entry: TensorEntry) -> None:
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            raise CheckpointError(f"{entry.file} was cut short while reading {entry.name!r}; {_FIX}")
        done += got


SAMPLES = 16
SAMPLE_BYTES = 4096
WHOLE_BELOW = 64 * 1024


def sample_bytes(entry: TensorEntry) -> bytes:
    """Bytes of ``entry``: whole when under :data:`WHOLE_BELOW`, else :data:`SAMPLES` slices spread over it."""
    with entry.file.open("rb") as handle:
        if entry.nbytes <= WHOLE_BELOW:
            handle.seek(entry.begin)
            return handle.read(entry.nbytes)
        parts = []
        for i in range(SAMPLES):
            handle.seek(entry.begin + (entry.nbytes - SAMPLE_BYTES) * i // (SAMPLES - 1))
            parts.append(handle.read(SAMPLE_BYTES))
        return b"".join(parts)


class Checkpoint:
    """A folder's safetensors weights as one table of tensors (see the module docstring)."""

    def __init__(self, folder: Path, files: list[FileHeader], entries: dict[str, TensorEntry], index: dict[str, Any] | None):
        self.folder = folder
        self.files = files
        self.entries = entries
        self.index = index

    @classmethod
    def open(cls, folder: str | Path) -> Checkpoint:
        """Read every header of ``folder``'s weights; with an index, its ``weight_map`` decides which file holds
        each tensor, and must agree with the files."""
        folder = Path(folder)
        index_path = folder / INDEX_NAME
        if index_path.is_file():
            return cls._from_index(folder, index_path)
        paths = sorted(folder.glob("*.safetensors"))
        if not paths:
            raise CheckpointError(f"{folder} has no *.safetensors weights; tokenshift reads safetensors only (never pickle): "
                                  "convert the checkpoint, e.g. save_pretrained(..., safe_serialization=True)")
        headers = [read_header(p) for p in paths]
        entries: dict[str, TensorEntry] = {}
        for header in headers:
            for name, entry in header.entries.items():
                if name in entries:
                    raise CheckpointError(f"{folder}: tensor {name!r} is stored in both {entries[name].file.name} and {header.path.name}, "
                                          f"and no {INDEX_NAME} says which is meant; remove the stale file")
                entries[name] = entry
        return cls(folder, headers, entries, None)

    @classmethod
    def _from_index(cls, folder: Path, index_path: Path) -> Checkpoint:
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{index_path} is not JSON; {_FIX}") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
            raise CheckpointError(f"{index_path} has no weight_map of tensor names to files; {_FIX}")
        names = sorted(set(weight_map.values()))
        bad = [n for n in names if Path(n).name != n or not n.endswith(".safetensors")]
        if bad:
            raise CheckpointError(f"{index_path} names {bad[0]!r}, not a .safetensors file in the same folder; {_FIX}")
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{index_path} names {len(missing)} file(s) that are not in {folder} ({', '.join(missing[:3])}); "
                                  "the download or copy is incomplete: fetch every shard")
        headers = [read_header(folder / n) for n in names]
        by_file = {h.path.name: h for h in headers}
        entries: dict[str, TensorEntry] = {}
        absent = []
        for name, file in weight_map.items():
            entry = by_file[file].entries.get(name)
            if entry is None:
                absent.append(f"{name} ({file})")
            else:
                entries[name] = entry
        if absent:
            raise CheckpointError(f"{index_path} places {len(absent)} tensor(s) in files that do not hold them "
                                  f"({', '.join(absent[:3])}); {_FIX}")
        for header in headers:
            for name in header.entries:
                if name not in weight_map:
                    raise CheckpointError(f"{header.path} holds {name!r}, which {INDEX_NAME} does not list; "
                                          f"the index and the shards disagree: {_FIX}")
                if weight_map[name] != header.path.name:
                    raise CheckpointError(f"tensor {name!r} is stored in {header.path.name} and in {weight_map[name]}; "
                                          f"the index names {weight_map[name]}: remove the stale copy or fix {INDEX_NAME}")
        return cls(folder, headers, entries, index)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def read(self, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Tensor ``name`` in its stored dtype, or converted to ``dtype`` (see :func:`read_entry`)."""
        return read_entry(self.entries[name], dtype)

    def fingerprint(self) -> str:
        """A content hash of the weights that reads a few KB per tensor: every header, and 16 slices of
        4 KB spread over each tensor (the whole of one under 64 KB). Two checkpoints of one
        architecture trained apart differ in it; reading it costs seconds, not the model."""
        import hashlib

        digest = hashlib.sha256()
        for name in sorted(self.entries):
            entry = self.entries[name]
            digest.update(f"{name}|{entry.dtype}|{entry.shape}".encode())
            digest.update(sample_bytes(entry))
        return digest.hexdigest()[:32]

    def map(self, name: str) -> torch.Tensor:
        """Tensor ``name`` mapped from its file, copy-on-write, in its stored dtype: only the pages a
        computation reads become resident (an embedding looked up for a few thousand distinct ids
        costs those rows, not the matrix)."""
        import numpy as np
        import torch

        entry = self.entries[name]
        if not entry.nbytes:
            return read_entry(entry)
        raw = np.memmap(entry.file, dtype=np.uint8, mode="c", offset=entry.begin, shape=(entry.nbytes,))
        return torch.from_numpy(raw).view(getattr(torch, entry.torch_dtype)).reshape(entry.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data (what the weights take in memory in their stored dtypes)."""
        return sum(e.nbytes for e in self.entries.values())

    @property
    def file_bytes(self) -> int:
        return sum(h.size for h in self.files)

    def dtypes(self) -> dict[str, int]:
        """Bytes of tensor data per stored dtype (torch names)."""
        found: dict[str, int] = {}
        for entry in self.entries.values():
            found[entry.torch_dtype] = found.get(entry.torch_dtype, 0) + entry.nbytes
        return found

    def main_dtype(self) -> str:
        """The dtype holding most of the bytes (torch name): the checkpoint's stored precision."""
        found = self.dtypes()
        return max(found, key=found.__getitem__) if found else "float32"
