"""The safetensors format without its library: headers, byte ranges, shard indexes and exact decoding.

A safetensors file is ``<u64 little-endian header length N><N bytes of JSON header><tensor bytes>``;
the header maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` with offsets
counted from the end of the header. Reading one tensor therefore needs the first ``8 + N`` bytes and
then exactly ``end - begin`` bytes, which is what lets a provider read a position table out of a
checkpoint of any size, locally by seek or remotely by HTTP range. Only numpy and the standard library
are used here (the safetensors numpy backend cannot read BF16).
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from explorer.errors import ProviderError
from explorer.loaders.regular_files import open_regular
from explorer.runtime.limits import check_shape

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

#: The safetensors reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000
#: Index files list tensor names only; even the largest public ones are a few MB.
MAX_INDEX_BYTES = 50_000_000
#: The deepest nesting of any JSON posembed reads (headers, indexes, configs nest 2 to 5 deep): deeper input
#: would exhaust Python's recursion in json or in whatever walks the result next (transformers' deepcopy).
MAX_JSON_DEPTH = 64

#: Item sizes of the dtypes a position table can be stored in, with the name we record.
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
#: Every other safetensors dtype, with its size, so headers naming them still validate.
_OTHER_ITEMSIZE = {"U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "C64": 8}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: dtype, shape and its absolute byte range in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies in the file."""
        return self.stop - self.start


@dataclass(frozen=True)
class Header:
    """A parsed safetensors header: the tensors by name and the free-text metadata."""

    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str]
    length: int
    """Bytes of the JSON header (without the 8-byte length prefix)."""

    def get(self, name: str, where: str) -> TensorInfo:
        """The tensor called ``name``, or ProviderError naming the file."""
        try:
            return self.tensors[name]
        except KeyError:
            raise ProviderError(f"{where}: no tensor {name!r} in the safetensors header") from None


def header_length(prefix: bytes, where: str, file_size: int | None = None) -> int:
    """The header length from a file's first 8 bytes, checked against sanity limits."""
    if len(prefix) < 8:
        raise ProviderError(f"{where}: too short to be a safetensors file ({len(prefix)} bytes)")
    (length,) = struct.unpack("<Q", prefix[:8])
    if length < 2 or length > MAX_HEADER_BYTES:
        raise ProviderError(
            f"{where}: not a safetensors file (header length {length}; expected 2..{MAX_HEADER_BYTES} bytes)"
        )
    if file_size is not None and 8 + length > file_size:
        raise ProviderError(f"{where}: truncated safetensors file (header of {length} bytes, file of {file_size})")
    return length


class _DuplicateKey(Exception):
    """Raised from inside ``json.loads`` by ``_unique_keys``; carries the key named twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (json keeps the last one silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests objects and arrays more than ``limit`` deep (walked with a stack, not recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def json_object(raw: bytes, where: str, what: str, *, unique_keys: bool = False) -> dict[str, Any]:
    """``raw`` decoded as UTF-8 JSON that must be an object nested at most ``MAX_JSON_DEPTH`` deep (and, with
    ``unique_keys``, without a key given twice in any object); ProviderError naming ``what`` otherwise."""
    too_deep = f"{where}: {what} nests more than {MAX_JSON_DEPTH} levels deep"
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys if unique_keys else None)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProviderError(f"{where}: {what} is not valid JSON ({exc})") from None
    except RecursionError:  # json gives up near Python's recursion limit, far past MAX_JSON_DEPTH
        raise ProviderError(too_deep) from None
    except _DuplicateKey as exc:
        raise ProviderError(f"{where}: {what} names {exc.args[0]!r} twice") from None
    except ValueError:  # Python reads no whole number of more than sys.get_int_max_str_digits() digits
        raise ProviderError(f"{where}: {what} holds a number of more than {sys.get_int_max_str_digits()} "
                            f"digits") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{where}: {what} is not a JSON object")
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise ProviderError(too_deep)
    return data


def parse_header(raw: bytes, where: str, file_size: int | None = None) -> Header:
    """Parse and validate the JSON header bytes (the ``N`` bytes after the length prefix).

    Every tensor's byte range must match its dtype and shape, and lie inside the file when
    ``file_size`` is known, so a corrupt or hostile header cannot make a reader seek anywhere. As strict
    as the safetensors library: no key twice, ``__metadata__`` maps strings to strings, names are valid
    UTF-8, and no two tensors' byte ranges overlap.
    """
    length = len(raw)
    data = json_object(raw, where, "the safetensors header", unique_keys=True)
    metadata = data.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ProviderError(f"{where}: the safetensors __metadata__ is not an object")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise ProviderError(f"{where}: the safetensors __metadata__ value of {_printable(key)} is "
                                f"{type(value).__name__}, not a string")
        if not (_is_utf8(key) and _is_utf8(value)):
            raise ProviderError(f"{where}: the safetensors __metadata__ holds a lone surrogate, not valid UTF-8")
    base = 8 + length
    tensors: dict[str, TensorInfo] = {}
    for name, entry in data.items():
        if not _is_utf8(name):
            raise ProviderError(f"{where}: tensor name {_printable(name)} holds a lone surrogate, not valid UTF-8")
        tensors[name] = _tensor_info(name, entry, base, where)
        if file_size is not None and tensors[name].stop > file_size:
            raise ProviderError(f"{where}: tensor {name!r} ends at byte {tensors[name].stop}, past the end of the file")
    _check_overlaps(tensors.values(), where)
    return Header(tensors, dict(metadata), length)


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: JSON's ``\\ud800`` escape gives Python a lone surrogate, which cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``repr(text)`` with lone surrogates spelled as escapes, so a message about them can be printed."""
    return repr(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _check_overlaps(infos: Any, where: str) -> None:
    """No two tensors share a byte: the safetensors library sorts the ranges and requires each to start where
    the last ended. (It also refuses gaps and trailing bytes, which are harmless to a reader by offset.)"""
    end, previous = 0, None
    for info in sorted(infos, key=lambda i: (i.start, i.stop)):
        if info.start < end:
            raise ProviderError(f"{where}: the data of tensors {previous!r} and {info.name!r} overlap")
        end, previous = info.stop, info.name


def _tensor_info(name: str, entry: Any, base: int, where: str) -> TensorInfo:
    bad = f"{where}: malformed header entry for tensor {name!r}"
    if not isinstance(entry, dict):
        raise ProviderError(bad)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        raise ProviderError(bad)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in [*shape, *offsets]):
        raise ProviderError(bad)
    begin, end = offsets
    if begin > end:
        raise ProviderError(f"{bad}: data_offsets {offsets} run backwards")
    size = ITEMSIZE.get(dtype) or _OTHER_ITEMSIZE.get(dtype)
    if size is not None and end - begin != math.prod(shape) * size:
        raise ProviderError(f"{bad}: {end - begin} bytes do not hold {dtype} of shape {shape}")
    return TensorInfo(name, dtype, tuple(shape), base + begin, base + end)


def read_header(path: str | Path) -> Header:
    """Parse the header of a local safetensors file, reading only its first ``8 + N`` bytes."""
    where = str(path)
    try:
        with open_regular(path) as handle:  # never a FIFO (blocks) or /dev/zero (no end)
            size = handle.seek(0, 2)
            handle.seek(0)
            length = header_length(handle.read(8), where, size)
            return parse_header(handle.read(length), where, size)
    except OSError as exc:
        raise ProviderError(f"cannot read {where}: {exc.strerror or exc}") from None


def read_tensor_bytes(path: str | Path, info: TensorInfo) -> bytes:
    """Exactly the bytes of one tensor from a local file, by seek, once its size is known to fit the limit."""
    check_shape(info.shape, f"{path}: {info.name}", what="a tensor")  # decoded to float32, 4 bytes a value
    try:
        with open_regular(path) as handle:
            handle.seek(info.start)
            raw = handle.read(info.nbytes)
    except OSError as exc:
        raise ProviderError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) != info.nbytes:
        raise ProviderError(f"{path}: tensor {info.name!r} is truncated ({len(raw)} of {info.nbytes} bytes)")
    return raw


def decode(raw: bytes, dtype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Little-endian tensor bytes as a float32 array; F32, F16 and BF16 are exact, F64 is rounded once."""
    if dtype not in DTYPE_NAMES:
        raise ProviderError(f"{where}: dtype {dtype} is not a floating-point table (expected F32, F16, BF16 or F64)")
    if len(raw) != math.prod(shape) * ITEMSIZE[dtype]:
        raise ProviderError(f"{where}: {len(raw)} bytes do not hold {dtype} of shape {list(shape)}")
    if dtype == "BF16":
        # bfloat16 is the top half of a float32: shifting the bits back up is exact.
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32)
    else:
        with np.errstate(over="ignore"):  # F64 beyond float32's range becomes Inf, which the table check refuses
            values = np.frombuffer(raw, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype]).astype(np.float32)
    return values.reshape(shape)


def parse_index(raw: bytes, where: str) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file) of a ``model.safetensors.index.json``."""
    if len(raw) > MAX_INDEX_BYTES:
        raise ProviderError(f"{where}: index of {len(raw)} bytes is larger than the {MAX_INDEX_BYTES}-byte limit")
    weight_map = json_object(raw, where, "the index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ProviderError(f"{where}: no weight_map of tensor name -> shard file")
    for shard in set(weight_map.values()):
        if shard.startswith(("/", "\\")) or ".." in Path(shard).parts:
            raise ProviderError(f"{where}: shard name {shard!r} leaves the model folder")
    return dict(weight_map)
