"""Writing a table out for other tools: ``.npy``, ``.safetensors`` (provenance in the metadata) or ``.csv``; and
the results of ``posembed analyze`` as JSON (``analysis_json``) and ``.npz`` (``analysis_npz``).

A relative term is written as its heads x distances values (``.csv``: one row per distance, one column per head);
a 2-D relative bias (``WindowBias``) as its heads x columns values (``.npy``, ``.safetensors`` with the provenance that
says its window and extra entries) or one row per offset and entry (``.csv``); a convolution kernel (``ConvKernel``)
as its groups x (C/G * C/G * K) values (``.npy``, ``.safetensors`` with the provenance that says its taps;
``values.reshape(C, C // G, K)`` is the conv's own weight) or one row per output and input channel, one column per
tap (``.csv``).

Every format holds exactly the float32 matrix (CSV with 9 significant digits, enough to read back
every float32 bit for bit). Files are written atomically through ``explorer.runtime.output.write_atomic``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from explorer.errors import OutputError
from explorer.runtime.console import utf8_text
from explorer.runtime.output import STDOUT, write_atomic

if TYPE_CHECKING:
    from explorer.core.embedding import PositionEmbedding
    from explorer.plugins.units import Results

FORMATS = ("npy", "safetensors", "csv")
#: The tensor name of the table in exported safetensors files.
TENSOR_NAME = "position_embedding"
#: The tensor names of a relative term in exported safetensors files: its values and their distances.
RELATIVE_NAME, RELATIVE_DISTANCES = "relative_position_term", "distances"
#: The tensor name of a 2-D relative bias in exported safetensors files (heads x columns: offsets, then extras).
WINDOW_NAME = "window_bias"
#: The tensor name of a convolution kernel in exported safetensors files (groups x (C/G * C/G * K)).
CONV_NAME = "conv_kernel"
#: The metadata key holding the full provenance as JSON.
PROVENANCE_KEY = "posembed.provenance"


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the file's suffix; OutputError when neither says."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise OutputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
        return fmt
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    if suffix in FORMATS and str(path) != STDOUT:
        return suffix
    raise OutputError(f"cannot tell the export format of {str(path)!r}: use a .npy, .safetensors or .csv name "
                      f"or --format")


def _npy(array) -> bytes:
    """``array`` as the bytes of an ``.npy`` file (never pickled)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def json_ready(data: Any) -> Any:
    """``data`` as JSON can hold it, by the one rule every JSON output of posembed follows (``--json``, the
    provenance in exported files): NaN and +-Inf, which JSON cannot spell, become null; numpy numbers become
    Python's; dicts, lists and tuples are followed."""
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    if type(data).__module__ == "numpy" and getattr(data, "ndim", None) == 0:  # np.float32(nan), np.int64(3)
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def json_text(data: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """``data`` as JSON text by ``json_ready``'s rule (NaN and +-Inf as null); anything else JSON lacks as text."""
    return json.dumps(json_ready(data), indent=indent, sort_keys=sort_keys, allow_nan=False, default=str)


def _metadata(provenance: dict, keys: tuple[str, ...]) -> dict[str, str]:
    """Safetensors metadata: the whole provenance as JSON, and ``keys`` of it one by one (as UTF-8 text)."""
    metadata = {PROVENANCE_KEY: json_text(provenance, sort_keys=True)}
    metadata.update({f"posembed.{k}": utf8_text(str(v)) for k, v in provenance.items() if k in keys and v is not None})
    return metadata


def encode(embedding: PositionEmbedding, fmt: str) -> bytes:
    """The table (or a relative term's heads x distances values) in ``fmt`` as bytes."""
    import numpy as np

    if embedding.term == "relative":
        return encode_relative(embedding, fmt)
    if embedding.term == "window":
        return encode_window(embedding, fmt)
    if embedding.term == "conv":
        return encode_conv(embedding, fmt)
    matrix = embedding.matrix
    if fmt == "npy":
        return _npy(matrix)
    if fmt == "safetensors":
        from safetensors.numpy import save

        metadata = _metadata(embedding.provenance(), ("provider", "source", "kind", "offset", "dtype", "tensor",
                                                      "revision"))
        return save({TENSOR_NAME: np.ascontiguousarray(matrix)}, metadata=metadata)
    if fmt == "csv":
        buffer = io.StringIO()
        columns = ",".join(f"d{j}" for j in range(embedding.dim))
        if embedding.rows is not None:  # rows that are not positions: each row's label in a quoted second column
            buffer.write(f"row,{_quoted(embedding.rows.name)},{columns}\n")
            for k, (label, values) in enumerate(zip(embedding.rows.labels, matrix.astype(np.float64))):
                buffer.write(f"{k},{_quoted(label)}," + ",".join(f"{v:.9g}" for v in values) + "\n")
            return buffer.getvalue().encode("utf-8")
        buffer.write(f"position,{columns}\n")
        rows = np.column_stack([np.arange(embedding.positions, dtype=np.float64), matrix.astype(np.float64)])
        np.savetxt(buffer, rows, delimiter=",", fmt=["%d"] + ["%.9g"] * embedding.dim)
        return buffer.getvalue().encode("utf-8")
    raise OutputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def _quoted(text: str) -> str:
    """A CSV field in double quotes (quotes inside doubled), so commas in a label stay in its field."""
    return '"' + text.replace('"', '""') + '"'


def encode_relative(term, fmt: str) -> bytes:
    """A ``RelativePositionTerm`` in ``fmt``: ``.npy`` the heads x distances values; ``.safetensors`` those and the
    signed distances (``RELATIVE_DISTANCES``) with the provenance; ``.csv`` one row per distance, one column per
    head."""
    import numpy as np

    values = np.ascontiguousarray(term.values)
    if fmt == "npy":
        return _npy(values)
    if fmt == "safetensors":
        from safetensors.numpy import save

        metadata = _metadata(term.provenance(), ("provider", "source", "term", "kind", "dtype", "tensor",
                                                 "revision", "causal"))
        return save({RELATIVE_NAME: values, RELATIVE_DISTANCES: np.ascontiguousarray(term.distances)},
                    metadata=metadata)
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("distance," + ",".join(f"h{h}" for h in range(term.heads)) + "\n")
        rows = np.column_stack([term.distances.astype(np.float64), values.T.astype(np.float64)])
        np.savetxt(buffer, rows, delimiter=",", fmt=["%d"] + ["%.9g"] * term.heads)
        return buffer.getvalue().encode("utf-8")
    raise OutputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def encode_window(term, fmt: str) -> bytes:
    """A ``WindowBias`` in ``fmt``: ``.npy`` the heads x columns values (offsets row by row, then the extras);
    ``.safetensors`` those (``WINDOW_NAME``) with the provenance, whose window and extras ``file:`` reads back;
    ``.csv`` one row per offset (entry ``offset``, dy, dx) and per extra entry (its name, no dy and dx), one column
    per head."""
    import numpy as np

    if fmt == "npy":
        return _npy(np.ascontiguousarray(term.values))
    if fmt == "safetensors":
        from safetensors.numpy import save

        metadata = _metadata(term.provenance(), ("provider", "source", "term", "kind", "dtype", "tensor", "revision"))
        return save({WINDOW_NAME: np.ascontiguousarray(term.values)}, metadata=metadata)
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("entry,dy,dx," + ",".join(f"h{h}" for h in range(term.heads)) + "\n")
        rows, columns = term.span
        dy, dx = np.divmod(np.arange(rows * columns), columns)
        for column, (y, x) in enumerate(zip(dy - rows // 2, dx - columns // 2)):
            buffer.write(f"offset,{y},{x}," + ",".join(f"{v:.9g}" for v in term.values[:, column].astype(np.float64))
                         + "\n")
        for name, values in zip(term.extras, term.extra_values.T.astype(np.float64)):
            buffer.write(f"{_quoted(name)},,," + ",".join(f"{v:.9g}" for v in values) + "\n")
        return buffer.getvalue().encode("utf-8")
    raise OutputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def encode_conv(term, fmt: str) -> bytes:
    """A ``ConvKernel`` in ``fmt``: ``.npy`` the groups x (C/G * C/G * K) values; ``.safetensors`` those
    (``CONV_NAME``) with the provenance, whose taps ``file:`` reads back; ``.csv`` one row per output channel and
    input channel of its group (channel, input, group), one column per tap named by its frame offset."""
    import numpy as np

    if fmt == "npy":
        return _npy(np.ascontiguousarray(term.values))
    if fmt == "safetensors":
        from safetensors.numpy import save

        metadata = _metadata(term.provenance(), ("provider", "source", "term", "kind", "dtype", "tensor", "revision",
                                                 "taps"))
        return save({CONV_NAME: np.ascontiguousarray(term.values)}, metadata=metadata)
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("channel,input,group," + ",".join(f"t{k:+d}" for k in term.offsets) + "\n")
        kernel, side = term.kernel.astype(np.float64), term.group_channels
        for channel in range(term.channels):
            for inp in range(side):
                buffer.write(f"{channel},{inp},{channel // side}," + ",".join(f"{v:.9g}" for v in kernel[channel, inp])
                             + "\n")
        return buffer.getvalue().encode("utf-8")
    raise OutputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")


def export(embedding: PositionEmbedding, path: str | Path, fmt: str | None = None) -> str:
    """Write ``embedding`` to ``path`` atomically (``-`` is standard output); returns the format used."""
    fmt = format_for(path, fmt)
    write_atomic(path, encode(embedding, fmt), inputs=embedding.inputs())
    return fmt


def analysis_json(specs: Sequence[str], embeddings: Sequence[Any], results: Sequence[Results],
                  pairs: Sequence[tuple[int, int, Results]]) -> dict[str, Any]:
    """What ``posembed analyze --json`` prints: each table's spec, label, shape, rows and scalars, and each pair's
    scalars (NaN and Inf as null, by ``json_ready``'s rule)."""
    return json_ready({
        "tables": [
            {"spec": spec, "label": e.label, "term": e.term, "shape": list(e.shape),
             "rows": e.rows.as_dict() if getattr(e, "rows", None) is not None else None,
             "scalars": r.scalars()}
            for spec, e, r in zip(specs, embeddings, results)
        ],
        "comparisons": [
            {"a": specs[i], "b": specs[j], "scalars": c.scalars()} for i, j, c in pairs
        ],
    })


def analysis_npz(results: Sequence[Results], pairs: Sequence[tuple[int, int, Results]]) -> bytes:
    """What ``posembed analyze --npz`` writes: every declared array, keyed ``k.analysis.field`` for table ``k`` and
    ``i-j.analysis.field`` for a pair."""
    import numpy as np

    saved = {}
    for k, r in enumerate(results):
        saved.update(r.arrays(prefix=f"{k}."))
    for i, j, c in pairs:
        saved.update(c.arrays(prefix=f"{i}-{j}."))
    buffer = io.BytesIO()
    np.savez(buffer, **saved)
    return buffer.getvalue()
