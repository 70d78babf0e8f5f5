"""Fixtures for the model providers: tiny random models of every family, a fake hub on 127.0.0.1,
safetensors files built by hand (sparse, so a "600 MB" checkpoint costs no disk), and the hub
environment pointed at the fake hub and a private cache."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest

# ---------------------------------------------------------------------------------------------------------------------
# safetensors files by hand

ST_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (None, 2)}


def bf16_bytes(values: np.ndarray) -> bytes:
    """float32 values (already representable in bf16) as little-endian bf16 bytes."""
    return (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 values truncated to the nearest-below bf16 (so they survive bf16 exactly)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def write_safetensors(path: Path, tensors: dict, metadata: dict | None = None) -> dict[str, tuple[int, int]]:
    """Write a safetensors file. ``tensors`` maps name -> ndarray (F32/F16) or (dtype, shape) for zero filler
    or ("BF16", ndarray). Zero fillers are never written, so the file is sparse. Returns absolute byte ranges."""
    entries, offset, layout = {}, 0, []
    for name, value in tensors.items():
        if isinstance(value, tuple) and isinstance(value[1], np.ndarray):
            dtype, array = value
            data = bf16_bytes(array)
            shape = list(array.shape)
        elif isinstance(value, tuple):
            dtype, shape = value
            data = None
            shape = list(shape)
        else:
            dtype = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[value.dtype]
            data, shape = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes(), list(value.shape)
        nbytes = math.prod(shape) * ST_DTYPES[dtype][1]
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        layout.append((offset, nbytes, data))
        offset += nbytes
    if metadata:
        entries["__metadata__"] = metadata
    header = json.dumps(entries).encode()
    header += b" " * (-len(header) % 8)
    base = 8 + len(header)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        for start, nbytes, data in layout:
            if data is not None:
                handle.seek(base + start)
                handle.write(data)
        handle.truncate(base + offset)  # the zero fillers become a hole in the file
    return {name: (base + e["data_offsets"][0], base + e["data_offsets"][1])
            for name, e in entries.items() if name != "__metadata__"}


# ---------------------------------------------------------------------------------------------------------------------
# the fake hub


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, Path]] = field(default_factory=dict)


class FakeHub:
    """The hub's file endpoints (``/{repo}/resolve/{revision}/{file}``, HEAD and GET with Range) over HTTP/1.0.

    Counts every request and every body byte it sends, so tests can prove what a read cost.
    """

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[dict] = []
        self.bytes_sent = 0
        self.ignore_ranges = False  # behave like a plain web server that always sends the whole file
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def add(self, repo_id: str, folder: Path, revision: str = "main", tags: tuple[str, ...] = ()) -> str:
        """Publish every file of ``folder`` as a new commit of ``repo_id`` on branch ``revision``; returns the sha."""
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        commit = hashlib.sha1(f"{repo_id}{revision}{sorted(files)}{len(self.repos)}".encode()
                              + str(sum(len(r.commits) for r in self.repos.values())).encode()).hexdigest()
        repo = self.repos.setdefault(repo_id, Repo())
        repo.commits[commit] = files
        for ref in (revision, *tags):
            repo.refs[ref] = commit
        return commit

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a stopped hub is really gone

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.serve(self, head=True)

            def do_GET(self) -> None:
                hub.serve(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ranges(self, filename: str) -> list[str]:
        """The Range headers of every GET of ``filename``."""
        return [r["range"] for r in self.requests if r["method"] == "GET" and r["file"] == filename]

    def serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        record = self.record(handler)
        found = self.locate(handler, record)
        if found is not None:
            self.send_file(handler, head, found[1], {"X-Repo-Commit": found[0]})

    def record(self, handler: BaseHTTPRequestHandler) -> dict:
        """Note the request (method, path, Range, Authorization) in ``requests``."""
        record = {"method": handler.command, "path": handler.path, "range": handler.headers.get("Range"),
                  "auth": handler.headers.get("Authorization"), "file": None}
        with self.lock:
            self.requests.append(record)
        return record

    def locate(self, handler: BaseHTTPRequestHandler, record: dict) -> tuple[str, Path] | None:
        """(commit, path) a ``/{repo}/resolve/{revision}/{file}`` request names, or None once its error is sent."""
        match = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", handler.path.split("?")[0])
        if not match:
            return self.error(handler, 404, "RepoNotFound")
        repo_id, revision, filename = match.group(1), unquote(match.group(2)), unquote(match.group(3))
        record["file"] = filename
        repo = self.repos.get(repo_id)
        if repo is None:
            return self.error(handler, 404, "RepoNotFound")
        commit = repo.refs.get(revision, revision if revision in repo.commits else None)
        if commit is None:
            return self.error(handler, 404, "RevisionNotFound")
        path = repo.commits[commit].get(filename)
        if path is None:
            return self.error(handler, 404, "EntryNotFound", commit)
        return commit, path

    def send_file(self, handler: BaseHTTPRequestHandler, head: bool, path: Path, headers: dict[str, str]) -> None:
        """``path`` whole (200) or the one range asked for (206 with its Content-Range), counting the bytes sent."""
        size = path.stat().st_size
        start, stop, status = 0, size, 200
        wanted = handler.headers.get("Range")
        if wanted and not head and not self.ignore_ranges:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start, stop, status = int(first), min(int(last) + 1, size) if last else size, 206
            if start >= size:
                return self.error(handler, 416, "RangeNotSatisfiable", headers.get("X-Repo-Commit"))
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("ETag", f'"{hashlib.sha1(f"{path}{size}".encode()).hexdigest()}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(stop - start))
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        handler.end_headers()
        if head:
            return
        with open(path, "rb") as source:
            source.seek(start)
            left = stop - start
            while left:
                chunk = source.read(min(left, 1 << 20))
                with self.lock:  # counted before the client can have it: a test reading bytes_sent right after
                    self.bytes_sent += len(chunk)  # its load must not race this thread
                try:
                    handler.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                left -= len(chunk)

    @staticmethod
    def error(handler: BaseHTTPRequestHandler, status: int, code: str | None, commit: str | None = None,
              message: str | None = None, headers: dict[str, str] | None = None) -> None:
        handler.send_response(status)
        if code:
            handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message or code or "")
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


class RealHub(FakeHub):
    """The fake hub answering as huggingface.co does (its answers as huggingface_hub 2.4 expects them):

    - a small (non-LFS) file: 307 to ``/api/resolve-cache/models/{repo}/{commit}/{file}`` on the same host, which
      answers 200 (or 206 for a range);
    - an LFS file (``.safetensors``, ``.bin``): 302 to a signed URL on another host (``self.cdn``, a Xet bridge:
      ``/xet-bridge-us/{hash}?X-Amz-Signature=...``), which answers ranges with 206 and a Content-Range;
    - the commit in ``X-Repo-Commit``, sizes in ``X-Linked-Size``; errors with ``X-Error-Code`` and
      ``X-Error-Message``; a token that is not in ``valid_tokens`` (when set) is a 401 "Invalid credentials";
    - while ``rate_limited`` is above 0, each resolve request is a 429 with ``RateLimit: "resolvers";r=0;t=T``
      (``T`` = ``rate_reset``) and ``RateLimit-Policy``, as the hub's resolvers answer past their quota; while
      ``down`` is above 0, a 503 with no hint of when to come back.
    """

    LFS = (".safetensors", ".bin")

    def __init__(self) -> None:
        super().__init__()
        self.cdn = Cdn()
        self.valid_tokens: set[str] | None = None
        self.rate_limited, self.rate_reset, self.down = 0, 120, 0

    def start(self) -> "RealHub":
        self.cdn.start()
        return super().start()

    def stop(self) -> None:
        self.cdn.stop()
        super().stop()

    def serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        record = self.record(handler)
        auth = handler.headers.get("Authorization")
        if self.valid_tokens is not None and auth and auth.removeprefix("Bearer ") not in self.valid_tokens:
            return self.error(handler, 401, None, message="Invalid credentials in Authorization header")
        cached = re.fullmatch(r"/api/resolve-cache/models/(.+)/([0-9a-f]{40})/(.+)", handler.path.split("?")[0])
        if cached:
            repo_id, commit, filename = cached.group(1), cached.group(2), unquote(cached.group(3))
            record["file"] = filename
            path = self.repos[repo_id].commits[commit][filename]
            return self.send_file(handler, head, path, {"X-Repo-Commit": commit})
        if self.down > 0:
            self.down -= 1
            return self.error(handler, 503, None, message="Service Unavailable")
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return self.error(handler, 429, None, message="You have exceeded our hourly quotas for action "
                              "'resolve'. We had to rate limit your IP", headers={
                                  "RateLimit": f'"resolvers";r=0;t={self.rate_reset}',
                                  "RateLimit-Policy": '"fixed window";"resolvers";q=3000;w=300'})
        found = self.locate(handler, record)
        if found is None:
            return None
        commit, path = found
        repo_id = handler.path.split("/resolve/")[0].lstrip("/")
        headers = {"X-Repo-Commit": commit, "X-Linked-Size": str(path.stat().st_size), "Content-Length": "0"}
        if path.name.endswith(self.LFS):
            token = hashlib.sha256(str(path).encode()).hexdigest()
            self.cdn.files[token] = path
            location = f"{self.cdn.url}/xet-bridge-us/{token}?X-Amz-Expires=3600&X-Amz-Signature=0ff1ce"
            status = 302
        else:
            location = f"/api/resolve-cache/models/{repo_id}/{commit}/{quote(record['file'])}?etag=x"
            status = 307
        handler.send_response(status)
        handler.send_header("Location", location)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()


class Cdn(FakeHub):
    """The signed-URL host an LFS file is fetched from: its own origin, no token expected."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, Path] = {}

    def serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        record = self.record(handler)
        match = re.fullmatch(r"/xet-bridge-us/([0-9a-f]{64})", handler.path.split("?")[0])
        path = self.files.get(match.group(1)) if match and "X-Amz-Signature=" in handler.path else None
        if path is None:
            return self.error(handler, 403, None, message="Signature expired")
        record["file"] = path.name
        return self.send_file(handler, head, path, {})


class Mirror(FakeHub):
    """A mirror that answers every request with a 308 to the same path on ``target`` (as hf-mirror.com does)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        self.record(handler)
        handler.send_response(308)
        handler.send_header("Location", self.target + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def publish_small_gpt2(fake: FakeHub, folder: Path, seed: int) -> FakeHub:
    """Publish ``org/m``, a GPT-2-like model with a random 16 x 4 table (``fake.table``, commit ``fake.commit``)."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 16, "n_embd": 4}))
    fake.table = np.random.default_rng(seed).normal(size=(16, 4)).astype(np.float32)
    write_safetensors(folder / "model.safetensors", {"wte.weight": np.ones((10, 4), np.float32),
                                                     "wpe.weight": fake.table})
    fake.commit = fake.add("org/m", folder)
    return fake


def point_environment_at(monkeypatch, fake, home) -> None:
    """Point the Hugging Face environment at ``fake`` with a fresh private cache under ``home``; no token, online."""
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "POSEMBED_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("POSEMBED_LOAD_PLUGINS", "")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A running fake hub with the hub environment pointed at it and at a fresh private cache."""
    fake = FakeHub().start()
    point_environment_at(monkeypatch, fake, tmp_path / "hf-home")
    yield fake
    fake.stop()


# ---------------------------------------------------------------------------------------------------------------------
# tiny random models, one per family


@dataclass(frozen=True)
class TinyModel:
    """A saved tiny model and the table posembed must return for it, taken from the model in memory."""

    family: str
    path: Path
    expected: np.ndarray
    offset: int
    table: str = "auto"


def _family_cases():
    import transformers as T

    ids = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2)
    small = dict(num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, vocab_size=40)
    seq2seq = dict(d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, vocab_size=40,
                   decoder_start_token_id=2, **ids)
    # (family, config, model class, module holding the table, rows before position 0, table option)
    return [
        ("gpt2", T.GPT2Config(n_embd=8, n_layer=1, n_head=2, n_positions=24, vocab_size=40, **ids),
         T.GPT2LMHeadModel, "transformer.wpe", 0, "auto"),
        ("distilgpt2", T.GPT2Config(n_embd=8, n_layer=1, n_head=2, n_positions=20, vocab_size=40, **ids),
         T.GPT2Model, "wpe", 0, "auto"),
        ("gpt_neo", T.GPTNeoConfig(hidden_size=8, num_layers=2, num_heads=2, max_position_embeddings=24,
                                   vocab_size=40, attention_types=[[["global", "local"], 1]], **ids),
         T.GPTNeoForCausalLM, "transformer.wpe", 0, "auto"),
        ("opt", T.OPTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, ffn_dim=16,
                            max_position_embeddings=24, vocab_size=40, word_embed_proj_dim=8, **ids),
         T.OPTForCausalLM, "model.decoder.embed_positions", 2, "auto"),
        ("bert", T.BertConfig(hidden_size=8, max_position_embeddings=24, **small), T.BertModel,
         "embeddings.position_embeddings", 0, "auto"),
        ("roberta", T.RobertaConfig(hidden_size=8, max_position_embeddings=26, **small, **ids),
         T.RobertaForMaskedLM, "roberta.embeddings.position_embeddings", 2, "auto"),
        ("xlm-roberta", T.XLMRobertaConfig(hidden_size=8, max_position_embeddings=26, **small, pad_token_id=3),
         T.XLMRobertaModel, "embeddings.position_embeddings", 4, "auto"),
        ("distilbert", T.DistilBertConfig(dim=8, n_layers=1, n_heads=2, hidden_dim=16, max_position_embeddings=24,
                                          vocab_size=40), T.DistilBertModel, "embeddings.position_embeddings", 0,
         "auto"),
        ("electra", T.ElectraConfig(embedding_size=8, hidden_size=8, max_position_embeddings=24, **small),
         T.ElectraModel, "embeddings.position_embeddings", 0, "auto"),
        ("bart-encoder", T.BartConfig(max_position_embeddings=24, **seq2seq), T.BartForConditionalGeneration,
         "model.encoder.embed_positions", 2, "encoder"),
        ("bart-decoder", T.BartConfig(max_position_embeddings=24, **seq2seq), T.BartForConditionalGeneration,
         "model.decoder.embed_positions", 2, "decoder"),
        ("mbart-encoder", T.MBartConfig(max_position_embeddings=24, **seq2seq), T.MBartModel,
         "encoder.embed_positions", 2, "auto"),
        ("mbart-decoder", T.MBartConfig(max_position_embeddings=24, **seq2seq), T.MBartModel,
         "decoder.embed_positions", 2, "decoder"),
        ("whisper-encoder", T.WhisperConfig(max_source_positions=16, max_target_positions=24, num_mel_bins=8,
                                            suppress_tokens=None, begin_suppress_tokens=None, **seq2seq),
         T.WhisperForConditionalGeneration, "model.encoder.embed_positions", 0, "encoder"),
        ("whisper-decoder", T.WhisperConfig(max_source_positions=16, max_target_positions=24, num_mel_bins=8,
                                            suppress_tokens=None, begin_suppress_tokens=None, **seq2seq),
         T.WhisperForConditionalGeneration, "model.decoder.embed_positions", 0, "decoder"),
        ("biogpt", T.BioGptConfig(hidden_size=8, max_position_embeddings=24, **small), T.BioGptModel,
         "embed_positions", 2, "auto"),
    ]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Every family as a tiny randomly initialised model saved with save_pretrained (built once per session)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("tiny-models")
    models = {}
    for seed, (family, config, cls, module, offset, table) in enumerate(_family_cases()):
        torch.manual_seed(seed)
        model = cls(config).eval()
        with torch.no_grad():  # random, distinct rows everywhere, so a wrong row or tensor cannot match
            model.get_submodule(module).weight.normal_()
        path = root / family
        model.save_pretrained(path)
        table_now = model.get_submodule(module).weight.detach().numpy().copy()
        models[family] = TinyModel(family, path, table_now[offset:], offset, table)
    return models


@pytest.fixture
def gpt2_layout(tmp_path, gpt2_wpe):
    """GPT-2 small's real table in a Hugging Face layout folder: GPT2Config() and model.safetensors (wpe.weight)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "gpt2-real"
    transformers.GPT2Config().save_pretrained(folder)
    write_safetensors(folder / "model.safetensors", {"wpe.weight": gpt2_wpe}, {"format": "pt"})
    return folder


@pytest.fixture
def st_tools():
    """The hand-made safetensors helpers: write(path, tensors, metadata), bf16_bytes, round_to_bf16."""
    from types import SimpleNamespace

    return SimpleNamespace(write=write_safetensors, bf16_bytes=bf16_bytes, round_to_bf16=round_to_bf16)
