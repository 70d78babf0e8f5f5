"""The ``file`` provider: a table from ``.npy``, ``.npz``, ``.safetensors`` or a PyTorch ``.pt``/``.bin`` file.

``key`` names the array (``.npz``) or tensor (``.safetensors``, ``.pt``); it may be left out when
the file holds a single 2-D table or exactly one tensor with a known position-table name.
Safetensors files are read by offset (only the chosen tensor's bytes); pickled PyTorch files are
loaded with ``weights_only=True``. A safetensors file that ``posembed export`` wrote comes back as what was
exported (a relative term, a table with its kind, row labels or grid), from its ``posembed.provenance`` metadata.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from explorer.core.embedding import KINDS, grid_text
from explorer.errors import PosembedWarning, ProviderError
from explorer.loaders.regular_files import require_regular
from explorer.plugins.hookspecs import hookimpl
from explorer.plugins.provider import Param, Provider
from explorer.runtime.console import did_you_mean
from explorer.runtime.console import one_line
from explorer.runtime.limits import check_shape

SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth", ".bin")
#: Tensor names of timm's vision transformers' position tables, shape (1, N, D).
TIMM_NAMES = ("pos_embed",)


def _batched(shape: tuple[int, ...]) -> bool:
    """A (1, N, D) tensor: one table with a batch axis, as timm and transformers store a ViT's positions."""
    return len(shape) == 3 and shape[0] == 1


def pick_key(shapes: Mapping[str, tuple[int, ...]], key: str | None, where: str,
             kinds: Mapping[str, str] | None = None) -> str:
    """The name of the table to read: ``key`` if given, else the only 2-D entry or the only known table name.

    ``kinds`` says what an entry without a shape is (``a nested tensor``), for the message naming what the file
    holds when it holds no 2-D table."""
    if key is not None:
        if key not in shapes:
            listing = ", ".join(sorted(shapes)[:20]) + (" ..." if len(shapes) > 20 else "")
            raise ProviderError(f"{where}: no {key!r} (it holds: {listing}){did_you_mean(key, list(shapes))}")
        return key
    candidates = [name for name, shape in shapes.items() if len(shape) == 2 or _batched(shape)]
    if len(candidates) == 1:
        return candidates[0]
    from explorer.loaders.families import FAMILIES

    suffixes = {rule.suffix for rules in FAMILIES.values() for rule in rules.values()} | set(TIMM_NAMES)
    known = [n for n in candidates if any(n == s or n.endswith("." + s) for s in suffixes)]
    if len(known) == 1:
        return known[0]
    if not candidates:
        def what(name: str) -> str:
            if (kinds or {}).get(name):
                return kinds[name]
            return f"shape {' x '.join(map(str, shapes[name]))}" if shapes[name] else "a scalar"

        held = [f"{one_line(n) or 'a bare tensor'}: {what(n)}" for n in sorted(shapes)[:5]]
        listing = "; ".join(held) + (f"; and {len(shapes) - 5} more" if len(shapes) > 5 else "")
        raise ProviderError(f"{where}: holds no 2-D table (it holds {listing or 'nothing'})")
    listing = ", ".join(sorted(known or candidates)[:20])
    raise ProviderError(f"{where}: holds {len(candidates)} 2-D tables; choose one with key=NAME (e.g. {listing})")


def _from_safetensors(path: Path, key: str | None) -> tuple[Any, str, str, Any]:
    from explorer.loaders import safetensors_io as st

    header = st.read_header(path)
    name = pick_key({n: i.shape for n, i in header.tensors.items()}, key, str(path))
    info = header.tensors[name]
    matrix = st.decode(st.read_tensor_bytes(path, info), info.dtype, info.shape, f"{path}: {name}")
    return matrix, st.DTYPE_NAMES[info.dtype], name, header


def _from_torch(path: Path, key: str | None) -> tuple[Any, str, str, None]:
    from explorer.loaders.checkpoints import load_torch_file, state_dict_of, tensor_shape, torch_to_numpy

    tensors = state_dict_of(load_torch_file(path), str(path))
    kinds = {n: "a nested tensor (rows of different lengths)" for n, t in tensors.items() if getattr(t, "is_nested", 0)}
    name = pick_key({n: tensor_shape(t) for n, t in tensors.items()}, key, str(path), kinds)  # "" = a bare tensor
    matrix, dtype = torch_to_numpy(tensors[name], f"{path}: {name or 'the tensor'}")
    return matrix, dtype, name, None


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Shape and dtype of every array in a ``.npz``, from each member's ``.npy`` header alone.

    Loading a member to learn its shape would let a 300-byte archive whose header claims 10^6 x 10^6
    allocate terabytes; the header is all numpy's own reader looks at first, too.
    """
    import zipfile

    headers = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue  # numpy hands other members back as bytes, never as a table
            with archive.open(info) as member:
                headers[info.filename[:-len(".npy")]] = _npy_header(member)
    return headers


def _npy_header(handle: Any) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype from the header at the start of a ``.npy`` stream, reading nothing past it."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(handle)
    # Version 3.0 only allows UTF-8 in field names; its header is laid out as version 2.0's.
    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, _, dtype = read(handle)
    return shape, dtype


def _from_numpy(path: Path, key: str | None) -> tuple[Any, str, str | None, None]:
    import zipfile
    import zlib

    import numpy as np

    from explorer.loaders.regular_files import open_regular

    try:
        if path.suffix == ".npy":
            if key is not None:
                raise ProviderError(f"{path}: a .npy file holds one array; drop key={key}")
            with open_regular(path) as handle:
                if handle.read(6) != b"\x93NUMPY":
                    raise ProviderError(f"{path}: not a .npy file (no NumPy magic bytes at the start)")
                handle.seek(0)
                shape, dtype = _npy_header(handle)
            check_shape(shape, str(path), itemsize=max(dtype.itemsize, 4), what="an array")
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return np.asarray(array), str(array.dtype), None, None
        headers = _npz_headers(path)
        name = pick_key({n: shape for n, (shape, _) in headers.items()}, key, str(path))
        shape, dtype = headers[name]
        check_shape(shape, f"{path}: {name}", itemsize=max(dtype.itemsize, 4), what="an array")
        with np.load(path, allow_pickle=False) as archive:
            array = archive[name]
            return array, str(array.dtype), name, None
    except ProviderError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise ProviderError(f"cannot read {path}: {exc}") from None


#: Each reader returns the array, its stored dtype, its name and the safetensors header (None for other files).
_READERS: dict[str, Callable[[Path, str | None], tuple[Any, str, str | None, Any]]] = {
    ".npy": _from_numpy, ".npz": _from_numpy, ".safetensors": _from_safetensors,
    ".pt": _from_torch, ".pth": _from_torch, ".bin": _from_torch,
}


def read(path: str | None, key: str | None) -> tuple[Any, str, str | None]:
    """The array ``key`` of a file (as ``pick_key`` chooses when None), its stored dtype and its name; the reading
    behind both this provider and ``explorer.read_tensor``."""
    return _read(path, key)[:3]


def _read(path: str | None, key: str | None) -> tuple[Any, str, str | None, Any]:
    """``read``, plus the safetensors header of a ``.safetensors`` file (None for other files)."""
    if not path:
        raise ProviderError("file needs a path: file:PATH[,key=NAME]")
    target = Path(path).expanduser()
    try:
        require_regular(target, path)  # a FIFO, a device or a folder is refused, never read
    except OSError:
        raise ProviderError(f"no such file: {path}") from None
    reader = _READERS.get(target.suffix.lower())
    if reader is None:
        raise ProviderError(f"{path}: unsupported file type {target.suffix!r} (supported: {', '.join(SUFFIXES)})")
    return reader(target, key)


def expected_shape(path: str | None, key: str | None, offset: int, **_: Any) -> tuple[int, int] | None:
    """The table's shape from its file's header alone (``.npy``, ``.npz``, ``.safetensors``; None for a pickle),
    read with every check ``load`` makes and nothing past the header (``Provider.expected_shape``)."""
    from explorer.loaders import safetensors_io as st
    from explorer.loaders.regular_files import open_regular

    if not path:
        return None
    target = Path(path).expanduser()
    require_regular(target, path)  # a FIFO, a device or a folder: not opened
    suffix = target.suffix.lower()
    if suffix == ".npy":
        with open_regular(target) as handle:
            shape = _npy_header(handle)[0]
    elif suffix == ".npz":
        shapes = {name: shape for name, (shape, _) in _npz_headers(target).items()}
        shape = shapes[pick_key(shapes, key, path)]
    elif suffix == ".safetensors":
        tensors = st.read_header(target).tensors
        shape = tensors[pick_key({name: info.shape for name, info in tensors.items()}, key, path)].shape
    else:
        return None
    shape = tuple(shape[1:]) if _batched(tuple(shape)) else tuple(shape)
    return (max(shape[0] - offset, 0), shape[1]) if len(shape) == 2 else None


#: With ``grid`` and no ``offset``, at most this many leading rows are taken for class, distillation or register
#: tokens (timm's ``num_prefix_tokens``) and dropped.
MAX_PREFIX_ROWS = 8


def _grid_offset(rows: int, grid: tuple[int, ...], offset: int, path: str) -> int:
    """The rows to drop before a ``grid`` of patches: ``offset``, or (when 0) the rows beyond H * W (T * H * W)."""
    patches = math.prod(grid)
    extra = rows - patches
    if offset == 0 and 0 < extra <= MAX_PREFIX_ROWS:
        return extra  # timm's pos_embed starts with its class (and distillation) tokens' rows
    if extra != offset:
        raise ProviderError(f"{path}: a {grid_text(grid)} grid has {patches} patches, but the table has {rows} "
                            f"rows{f' ({rows - offset} after offset={offset})' if offset else ''}")
    return offset


def load(path: str | None, key: str | None, offset: int, kind: str | None, grid: str | None = None):
    """The ``file`` provider's ``load``."""
    from explorer.core.embedding import PositionEmbedding, parse_grid

    shape = parse_grid(grid, "file") if grid is not None else None
    matrix, dtype, name, header = _read(path, key)
    target = Path(path).expanduser()
    if _batched(matrix.shape):  # timm's pos_embed, (1, N, D)
        matrix = matrix[0]
    if matrix.ndim != 2:
        raise ProviderError(f"{path}: {name or 'the array'} has shape {list(matrix.shape)}, "
                            f"not positions x dimensions")
    if shape is not None:
        offset = _grid_offset(matrix.shape[0], shape, offset, path)
    if offset and offset >= matrix.shape[0]:  # an empty table is PositionEmbedding's to refuse
        raise ProviderError(f"{path}: cannot drop {offset} offset rows from a table of {matrix.shape[0]}")
    params = {"path": path, "offset": offset, "kind": kind or "other", **({"key": key} if key else {}),
              **({"grid": grid} if grid is not None else {})}
    if header is not None and offset == 0 and shape is None:  # options that choose other rows win
        restored = exported(str(path), header, name, matrix, dtype, params, kind)
        if restored is not None:
            return restored
    return PositionEmbedding(matrix[offset:], provider="file", source=str(path), kind=kind or "other",
                             offset=offset, dtype=dtype, params=params, tensor=name or None, grid=shape,
                             description=f"{target.suffix[1:]} file")


def exported(path: str, header: Any, name: str, matrix: Any, dtype: str, params: dict[str, Any],
             kind: str | None) -> Any:
    """What posembed exported to a safetensors file (``explorer.export``), rebuilt from its ``posembed.provenance``
    metadata: a relative term, or a table with its kind and row labels or patch grid. None when the tensor is not
    an export; None with one warning when the metadata (untrusted) does not fit the tensor: read it as a plain
    table then."""
    from explorer.errors import PosembedError
    from explorer.export import CONV_NAME, PROVENANCE_KEY, RELATIVE_NAME, TENSOR_NAME, WINDOW_NAME

    raw = header.metadata.get(PROVENANCE_KEY)
    if raw is None or name not in (TENSOR_NAME, RELATIVE_NAME, WINDOW_NAME, CONV_NAME):
        return None
    try:
        return _rebuild(path, header, name, matrix, dtype, params, kind, raw)
    except PosembedError as exc:
        warnings.warn(PosembedWarning(one_line(f"{path}: its {PROVENANCE_KEY} metadata does not fit tensor "
                                               f"{name!r} ({exc}); read as a plain table")), stacklevel=2)
        return None


def _rebuild(path: str, header: Any, name: str, matrix: Any, dtype: str, params: dict[str, Any],
             kind: str | None, raw: str) -> Any:
    """``exported``'s work: every field taken from the provenance checked against the tensor, else ProviderError
    (or the constructors' EmbeddingError)."""
    import numpy as np

    from explorer.core.embedding import MAX_ROW_LABEL, PositionEmbedding, RowAxis
    from explorer.core.relative import RelativePositionTerm
    from explorer.export import CONV_NAME, PROVENANCE_KEY, RELATIVE_DISTANCES, RELATIVE_NAME, WINDOW_NAME
    from explorer.loaders import safetensors_io as st

    provenance = st.json_object(raw.encode("utf-8"), path, PROVENANCE_KEY)
    term = provenance.get("term", "absolute")
    if term not in ("absolute", "relative", "window", "conv"):
        raise ProviderError("its term is not 'absolute', 'relative', 'window' or 'conv'")
    if any((term == kind) != (name == tensor) for kind, tensor in (("relative", RELATIVE_NAME),
                                                                   ("window", WINDOW_NAME), ("conv", CONV_NAME))):
        raise ProviderError(f"its term is {term!r}, which posembed does not export as {name!r}")
    if provenance.get("shape") != list(matrix.shape):
        raise ProviderError(f"its shape is not the tensor's {list(matrix.shape)}")
    stored_kind = provenance.get("kind")
    if not isinstance(stored_kind, str) or not 0 < len(stored_kind.strip()) <= MAX_ROW_LABEL:
        raise ProviderError(f"its kind is not a text of 1 to {MAX_ROW_LABEL} characters")
    params = {**params, "kind": kind or stored_kind.strip()}
    common = dict(provider="file", source=path, kind=params["kind"], dtype=dtype, params=params, tensor=name,
                  description="safetensors file exported by posembed")
    if term == "relative":
        causal, info = provenance.get("causal"), header.tensors.get(RELATIVE_DISTANCES)
        if not isinstance(causal, bool):
            raise ProviderError("its causal is not true or false")
        if info is None or info.dtype != "I64" or info.shape != (matrix.shape[1],):
            raise ProviderError(f"no I64 tensor {RELATIVE_DISTANCES!r} of {matrix.shape[1]} distances beside it")
        distances = np.frombuffer(st.read_tensor_bytes(path, info), dtype="<i8")
        restored = RelativePositionTerm(matrix, causal=causal, **common)
        if not np.array_equal(distances, restored.distances):
            raise ProviderError(f"its {RELATIVE_DISTANCES!r} are not {int(restored.distances[0])} .. "
                                f"{int(restored.distances[-1])} in steps of 1")
        return restored
    if term == "window":  # WindowBias checks the window, the names and that they fit the columns
        from explorer.core.window import WindowBias

        window, extras = provenance.get("window"), provenance.get("extras", [])
        if not (isinstance(window, list) and len(window) == 2 and isinstance(extras, list)
                and all(isinstance(name, str) for name in extras)):
            raise ProviderError("its window is not a pair [Wh, Ww] or its extras not a list of names")
        return WindowBias(matrix, window=tuple(window), extras=tuple(extras), **common)
    if term == "conv":  # ConvKernel checks that the taps and the channels fit the columns
        from explorer.core.conv import ConvKernel

        taps = provenance.get("taps")
        if isinstance(taps, bool) or not isinstance(taps, int):
            raise ProviderError("its taps is not a whole number")
        return ConvKernel(matrix, taps=taps, **common)
    grid, rows = provenance.get("grid"), provenance.get("rows")
    if grid is not None and not (isinstance(grid, list) and len(grid) in (2, 3)):
        raise ProviderError("its grid is not a list [H, W] or [T, H, W]")
    if rows is not None:
        labels = rows.get("labels") if isinstance(rows, dict) else None
        if not (isinstance(labels, list) and len(labels) == matrix.shape[0]
                and all(isinstance(label, str) for label in labels)):
            raise ProviderError(f"its rows do not hold {matrix.shape[0]} text labels")
        if not isinstance(rows.get("name"), str) or not isinstance(rows.get("reverse", False), bool):
            raise ProviderError("its rows have no text name or a reverse that is not true or false")
        rows = RowAxis(rows["name"], tuple(labels), rows.get("reverse", False))
    return PositionEmbedding(matrix, grid=grid, rows=rows, **common)


PROVIDER = Provider(
    name="file",
    description="A table from a .npy, .npz, .safetensors or .pt/.bin file",
    load=load,
    params=(
        Param("path", str, None, "the file"),
        Param("key", str, None, "array name in .npz, tensor name in .safetensors/.pt (optional if only one)"),
        Param("offset", int, 0, "rows to drop before position 0", minimum=0),
        Param("kind", str, None, "what the table is (default: other, or the kind a posembed export records)",
              choices=KINDS),
        Param("grid", str, None, "HxW: the rows are an image's patches, row by row; TxHxW: a video's, frame by "
              "frame (leading class-token rows beyond the grid's patches are dropped as offset)"),
    ),
    target="path",
    expected_shape=expected_shape,
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``file`` provider."""
    register(PROVIDER)
