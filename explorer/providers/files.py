"""The ``file`` provider: a table from ``.npy``, ``.npz``, ``.safetensors`` or a PyTorch ``.pt``/``.bin`` file.

``key`` names the array (``.npz``) or tensor (``.safetensors``, ``.pt``); it may be left out when
the file holds a single 2-D table or exactly one tensor with a known position-table name.
Safetensors files are read by offset (only the chosen tensor's bytes); pickled PyTorch files are
loaded with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from explorer.embedding import KINDS
from explorer.errors import ProviderError
from explorer.hookspecs import hookimpl
from explorer.provider import Param, Provider, _closest

SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth", ".bin")


def pick_key(shapes: Mapping[str, tuple[int, ...]], key: str | None, where: str) -> str:
    """The name of the table to read: ``key`` if given, else the only 2-D entry or the only known table name."""
    if key is not None:
        if key not in shapes:
            listing = ", ".join(sorted(shapes)[:20]) + (" ..." if len(shapes) > 20 else "")
            raise ProviderError(f"{where}: no {key!r} (it holds: {listing}){_closest(key, list(shapes))}")
        return key
    candidates = [name for name, shape in shapes.items() if len(shape) == 2]
    if len(candidates) == 1:
        return candidates[0]
    from explorer.loaders.families import FAMILIES

    suffixes = {rule.suffix for rules in FAMILIES.values() for rule in rules.values()}
    known = [n for n in candidates if any(n == s or n.endswith("." + s) for s in suffixes)]
    if len(known) == 1:
        return known[0]
    listing = ", ".join(sorted(known or candidates)[:20]) or "none"
    raise ProviderError(f"{where}: holds {len(candidates)} 2-D tables; choose one with key=NAME (e.g. {listing})")


def _from_safetensors(path: Path, key: str | None) -> tuple[Any, str, str]:
    from explorer.loaders import safetensors_io as st

    header = st.read_header(path)
    name = pick_key({n: i.shape for n, i in header.tensors.items()}, key, str(path))
    info = header.tensors[name]
    matrix = st.decode(st.read_tensor_bytes(path, info), info.dtype, info.shape, f"{path}: {name}")
    return matrix, st.DTYPE_NAMES[info.dtype], name


def _from_torch(path: Path, key: str | None) -> tuple[Any, str, str]:
    from explorer.loaders.checkpoints import load_torch_file, state_dict_of, torch_to_numpy

    tensors = state_dict_of(load_torch_file(path), str(path))
    name = pick_key({n: tuple(t.shape) for n, t in tensors.items()}, key, str(path))  # "" = a bare tensor
    matrix, dtype = torch_to_numpy(tensors[name])
    return matrix, dtype, name


def _from_numpy(path: Path, key: str | None) -> tuple[Any, str, str | None]:
    import numpy as np

    try:
        if path.suffix == ".npy":
            if key is not None:
                raise ProviderError(f"{path}: a .npy file holds one array; drop key={key}")
            with open(path, "rb") as handle:
                if handle.read(6) != b"\x93NUMPY":
                    raise ProviderError(f"{path}: not a .npy file (no NumPy magic bytes at the start)")
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return np.asarray(array), str(array.dtype), None
        with np.load(path, allow_pickle=False) as archive:
            shapes = {name: archive[name].shape for name in archive.files}
            name = pick_key(shapes, key, str(path))
            array = archive[name]
            return array, str(array.dtype), name
    except ProviderError:
        raise
    except (OSError, ValueError) as exc:
        raise ProviderError(f"cannot read {path}: {exc}") from None


_READERS: dict[str, Callable[[Path, str | None], tuple[Any, str, str | None]]] = {
    ".npy": _from_numpy, ".npz": _from_numpy, ".safetensors": _from_safetensors,
    ".pt": _from_torch, ".pth": _from_torch, ".bin": _from_torch,
}


def read(path: str | None, key: str | None) -> tuple[Any, str, str | None]:
    """The array ``key`` of a file (as ``pick_key`` chooses when None), its stored dtype and its name; the reading
    behind both this provider and ``explorer.read_tensor``."""
    if not path:
        raise ProviderError("file needs a path: file:PATH[,key=NAME]")
    target = Path(path).expanduser()
    if not target.is_file():
        raise ProviderError(f"no such file: {path}")
    reader = _READERS.get(target.suffix.lower())
    if reader is None:
        raise ProviderError(f"{path}: unsupported file type {target.suffix!r} (supported: {', '.join(SUFFIXES)})")
    return reader(target, key)


def load(path: str | None, key: str | None, offset: int, kind: str):
    """The ``file`` provider's ``load``."""
    from explorer.embedding import PositionEmbedding

    matrix, dtype, name = read(path, key)
    target = Path(path).expanduser()
    if matrix.ndim != 2:
        raise ProviderError(f"{path}: {name or 'the array'} has shape {list(matrix.shape)}, "
                            f"not positions x dimensions")
    if offset and offset >= matrix.shape[0]:  # an empty table is PositionEmbedding's to refuse
        raise ProviderError(f"{path}: cannot drop {offset} offset rows from a table of {matrix.shape[0]}")
    params = {"path": path, "offset": offset, "kind": kind, **({"key": key} if key else {})}
    return PositionEmbedding(matrix[offset:], provider="file", source=str(path), kind=kind, offset=offset,
                             dtype=dtype, params=params, tensor=name or None,
                             description=f"{target.suffix[1:]} file")


PROVIDER = Provider(
    name="file",
    description="A table from a .npy, .npz, .safetensors or .pt/.bin file",
    load=load,
    params=(
        Param("path", str, None, "the file"),
        Param("key", str, None, "array name in .npz, tensor name in .safetensors/.pt (optional if only one)"),
        Param("offset", int, 0, "rows to drop before position 0", minimum=0),
        Param("kind", str, "other", "what the table is", choices=KINDS),
    ),
    target="path",
)


@hookimpl
def register_providers(register) -> None:
    """Register the ``file`` provider."""
    register(PROVIDER)
