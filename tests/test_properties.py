"""Property tests: whatever the input, nothing escapes but ``explorer.errors.PosembedError`` subclasses.

Covered here: spec parsing and ``Provider.resolve`` for every built-in provider, ``Param.convert``,
safetensors header parsing (random bytes, and valid headers mutated field by field) down to decoding
the tensor bytes, shard indexes, and ``PositionEmbedding`` on random shapes and values. The analyses
on random shapes and values are covered by
``tests/test_analysis_degenerate.py::test_random_tables_raise_nothing_but_the_projects_errors``.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from explorer.core.embedding import PositionEmbedding
from explorer.errors import PosembedError
from explorer.loaders import safetensors_io as sio
from explorer.loading.spec import parse_spec

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def registry():
    import os

    from explorer.plugins.manager import get_plugin_manager
    from explorer.plugins.registry import get_registry

    old = os.environ.get("POSEMBED_LOAD_PLUGINS")
    os.environ["POSEMBED_LOAD_PLUGINS"] = ""
    try:
        return get_registry(get_plugin_manager())
    finally:
        if old is None:
            del os.environ["POSEMBED_LOAD_PLUGINS"]
        else:
            os.environ["POSEMBED_LOAD_PLUGINS"] = old


# ---------------------------------------------------------------------------------------------------------------------
# specs

SPEC_CHARS = st.sampled_from(list("abcdefghsinuoidalfpt2hf_:,=.-/ 0123456789\t") + ["positions", "dim", "file",
                                                                                     "key", "=1e9", "=-1", "=nan",
                                                                                     "sinusoidal", ",layout="])
spec_texts = st.one_of(st.text(max_size=40), st.lists(SPEC_CHARS, max_size=12).map("".join))


@FAST
@given(spec_texts)
def test_spec_parsing_raises_only_the_projects_errors(text):
    try:
        spec = parse_spec(text)
    except PosembedError:
        return
    assert spec.name and (spec.target is None or spec.target)
    assert all(k.isidentifier() for k in spec.options)
    again = parse_spec(str(spec))  # what parse_spec returns can be written back and read again
    assert again.name == spec.name and again.options == spec.options


@FAST
@given(text=spec_texts, provider_name=st.sampled_from(["sinusoidal", "gpt2", "hf", "file"]))
def test_resolve_raises_only_the_projects_errors(text, provider_name, registry):
    provider = registry.get(provider_name)
    try:
        spec = parse_spec(text)
        kwargs = provider.resolve(spec.target, spec.options)
    except PosembedError:
        return
    assert set(kwargs) == {p.name for p in provider.params}


values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                   st.sampled_from(["1_000", "0x10", "1e3", " 7 ", "inf", "-0", "yes", "off", "learned"]))


@FAST
@given(options=st.dictionaries(st.sampled_from(["positions", "dim", "base", "layout", "offset", "kind", "key", "path",
                                        "revision", "table", "tensor", "model", "bogus"]), values, max_size=5),
       provider_name=st.sampled_from(["sinusoidal", "gpt2", "hf", "file"]))
def test_typed_options_raise_only_the_projects_errors(options, provider_name, registry):
    provider = registry.get(provider_name)
    try:
        kwargs = provider.resolve(None, options)
    except PosembedError:
        return
    for param in provider.params:
        value = kwargs[param.name]
        assert value is None or isinstance(value, param.type)
        if param.choices is not None and value is not None:
            assert value in param.choices
        if param.minimum is not None and value is not None:
            assert value >= param.minimum


# ---------------------------------------------------------------------------------------------------------------------
# safetensors headers


def _read_everything(raw_file: bytes) -> None:
    """Parse a whole file's header, read and decode every tensor: what a provider would do."""
    where = "prop.safetensors"
    length = sio.header_length(raw_file[:8], where, len(raw_file))
    header = sio.parse_header(raw_file[8:8 + length], where, len(raw_file))
    for info in header.tensors.values():
        assert 8 + length <= info.start <= info.stop <= len(raw_file)
        data = raw_file[info.start:info.stop]
        if info.dtype in sio.DTYPE_NAMES:
            matrix = sio.decode(data, info.dtype, info.shape, where)
            assert matrix.dtype == np.float32 and matrix.shape == info.shape


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_the_projects_errors(raw):
    try:
        _read_everything(raw)
    except PosembedError:
        pass


@FAST
@given(st.binary(max_size=200))
def test_random_json_header_bytes_raise_only_the_projects_errors(raw):
    try:
        sio.parse_header(raw, "prop", 8 + len(raw) + 64)
    except PosembedError:
        pass


def _valid_file(shapes: list[tuple[str, list[int]]]) -> tuple[dict, bytes]:
    header, offset = {}, 0
    for dtype, shape in shapes:
        nbytes = math.prod(shape) * sio.ITEMSIZE[dtype]
        header[f"t{len(header)}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return header, bytes(range(256)) * (offset // 256 + 1)


junk = st.one_of(st.integers(-2**70, 2**70), st.floats(), st.text(max_size=6), st.none(), st.booleans(),
                 st.lists(st.integers(-5, 2**40), max_size=4), st.dictionaries(st.text(max_size=3), st.integers()))
tensor_shapes = st.lists(st.tuples(st.sampled_from(["F32", "F16", "BF16", "F64", "I32", "U8"]),
                                   st.lists(st.integers(0, 6), min_size=0, max_size=3)), min_size=1, max_size=3)


@FAST
@given(tensor_shapes, st.lists(st.tuples(st.sampled_from(["dtype", "shape", "data_offsets", "__metadata__", "entry",
                                                          "truncate", "length"]), junk), max_size=3),
       st.data())
def test_mutated_valid_headers_raise_only_the_projects_errors(shapes, mutations, data):
    header, body = _valid_file(shapes)
    names = list(header)
    truncate, length_delta = None, 0
    for field, value in mutations:
        name = data.draw(st.sampled_from(names))
        if field == "entry":
            header[name] = value
        elif field == "__metadata__":
            header["__metadata__"] = value
        elif field == "truncate":
            truncate = value if isinstance(value, int) else None
        elif field == "length":
            length_delta = value if isinstance(value, int) else 0
        elif isinstance(header[name], dict):
            header[name][field] = value
    try:
        raw_header = json.dumps(header).encode()
    except (TypeError, ValueError):
        return
    length = max(0, min(len(raw_header) + length_delta, 2**64 - 1))
    raw_file = struct.pack("<Q", length) + raw_header + body
    if truncate is not None:
        raw_file = raw_file[:max(0, truncate) % (len(raw_file) + 1)]
    try:
        _read_everything(raw_file)
    except PosembedError:
        pass


@FAST
@given(tensor_shapes)
def test_unmutated_headers_read_back_exactly(shapes):
    header, body = _valid_file(shapes)
    raw_header = json.dumps(header).encode()
    raw_file = struct.pack("<Q", len(raw_header)) + raw_header + body
    _read_everything(raw_file)  # a valid file raises nothing at all


@FAST
@given(st.one_of(st.binary(max_size=100), st.dictionaries(st.text(max_size=5), junk, max_size=3).map(
    lambda d: json.dumps({"weight_map": d}).encode())))
def test_shard_indexes_raise_only_the_projects_errors(raw):
    try:
        weight_map = sio.parse_index(raw, "prop")
    except PosembedError:
        return
    assert all(isinstance(v, str) and ".." not in v.split("/") and not v.startswith("/") for v in weight_map.values())


# ---------------------------------------------------------------------------------------------------------------------
# tables


any_tables = st.lists(st.integers(0, 6), min_size=0, max_size=3).flatmap(
    lambda shape: arrays(st.sampled_from([np.float32, np.float16, np.float64, np.int8, np.bool_]), tuple(shape)))


@FAST
@given(any_tables, st.integers(-2, 4))
def test_position_embedding_accepts_or_refuses_with_the_projects_errors(matrix, offset):
    try:
        embedding = PositionEmbedding(matrix, provider="prop", source="prop", offset=offset)
    except PosembedError:
        return
    assert embedding.matrix.dtype == np.float32 and embedding.matrix.ndim == 2
    assert np.isfinite(embedding.matrix).all() and embedding.matrix.size > 0
