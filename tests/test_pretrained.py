"""HF checkpoint loading (prefixes, layouts, namings, strict errors, hub cache) and save_hf."""

from __future__ import annotations

import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from safetensors.numpy import load_file, save_file

from jaxser.models import pretrained
from jaxser.models import bert
from jaxser.models import wav2vec2 as w2v

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HUBERT = w2v.PRESETS["tiny-hubert"]
BERT = bert.PRESETS["tiny-bert"]


def _hf_config(config):
  hf = config.to_hf()
  hf.pop("architectures")
  return transformers.AutoConfig.for_model(**hf)


def _random_params(config, seed=0):
  """Random params of every leaf (numpy RNG: no JAX RNG compile), from the shape template."""
  lib = bert if isinstance(config, bert.BertConfig) else w2v
  template = jax.eval_shape(lambda: lib.init_variables(config, jax.random.key(0)))["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), jnp.float32),
                      template)


def _assert_same_tree(a, b):
  fa, fb = flatten_dict(a), flatten_dict(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k])


def test_round_trip_flax_to_torch_hubert(tmp_path):
  params = _random_params(HUBERT)
  out_dir = pretrained.save_hf(params, HUBERT, tmp_path / "hubert")
  assert sorted(os.listdir(tmp_path)) == ["hubert"]  # no temp directory left behind
  tm, info = transformers.AutoModel.from_pretrained(out_dir, output_loading_info=True)
  assert isinstance(tm, transformers.HubertModel)
  assert not any(info.values()), info
  x = np.random.default_rng(1).standard_normal((2, 1800)).astype(np.float32)
  lengths = np.array([1800, 1000])
  x[1, 1000:] = 0
  mask = (np.arange(1800)[None] < lengths[:, None]).astype(np.int64)
  with torch.no_grad():
    out_t = tm.eval()(torch.tensor(x), attention_mask=torch.tensor(mask), output_hidden_states=True)
  module = w2v.Wav2Vec2Model(HUBERT)
  out_j = jax.jit(module.apply)({"params": params}, jnp.asarray(x), lengths=jnp.asarray(lengths))
  frames = np.asarray(out_j["frame_mask"])
  for ours, theirs in zip(out_j["hidden_states"] + (out_j["last_hidden_state"],),
                          out_t.hidden_states + (out_t.last_hidden_state,)):
    assert np.abs(np.asarray(ours) - theirs.numpy())[frames].max() <= 1e-5
  _, loaded, config = pretrained.load_encoder(out_dir)
  assert config == HUBERT
  _assert_same_tree(loaded["params"], params)


def test_round_trip_flax_to_torch_bert_and_overwrite(tmp_path):
  params = _random_params(BERT)
  target = tmp_path / "bert"
  pretrained.save_hf(_random_params(BERT, seed=5), BERT, target)
  with pytest.raises(FileExistsError, match="overwrite=True"):
    pretrained.save_hf(params, BERT, target)
  pretrained.save_hf(params, BERT, target, overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["bert"]
  tm, info = transformers.AutoModel.from_pretrained(target, output_loading_info=True)
  assert not any(info.values()), info
  ids = np.random.default_rng(2).integers(1, BERT.vocab_size, (2, 9))
  mask = np.ones_like(ids)
  mask[0, 6:] = 0
  with torch.no_grad():
    out_t = tm.eval()(torch.tensor(ids), attention_mask=torch.tensor(mask))
  out_j = jax.jit(bert.BertModel(BERT).apply)({"params": params}, jnp.asarray(ids),
                                               attention_mask=jnp.asarray(mask))
  valid = mask.astype(bool)
  diff = np.abs(np.asarray(out_j["last_hidden_state"]) - out_t.last_hidden_state.numpy())
  assert diff[valid].max() <= 1e-5
  assert np.abs(np.asarray(out_j["pooler_output"]) - out_t.pooler_output.numpy()).max() <= 1e-5


def test_failed_save_keeps_previous_directory(tmp_path, monkeypatch):
  params = _random_params(BERT)
  target = pretrained.save_hf(params, BERT, tmp_path / "bert")
  before = load_file(os.path.join(target, "model.safetensors"))

  def broken(*args, **kwargs):
    raise OSError("disk full")

  import safetensors.numpy
  monkeypatch.setattr(safetensors.numpy, "save_file", broken)
  with pytest.raises(OSError, match="disk full"):
    pretrained.save_hf(_random_params(BERT, seed=3), BERT, target, overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["bert"]
  after = load_file(os.path.join(target, "model.safetensors"))
  assert all(np.array_equal(before[k], after[k]) for k in before)


def _save_torch(model, directory):
  model.save_pretrained(directory)
  return str(directory)


def test_mismatch_error_lists_missing_unexpected_and_shapes(tmp_path):
  src = _save_torch(transformers.HubertModel(_hf_config(HUBERT)), tmp_path / "ok")
  state = load_file(os.path.join(src, "model.safetensors"))
  del state["encoder.layers.1.attention.k_proj.bias"]
  state["encoder.layers.0.feed_forward.output_dense.weight"] = np.zeros((32, 63), np.float32)
  state["encoder.extra_gate.weight"] = np.zeros(3, np.float32)
  bad = tmp_path / "bad"
  bad.mkdir()
  save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
  shutil.copy(os.path.join(src, "config.json"), bad / "config.json")
  with pytest.raises(pretrained.CheckpointMismatchError) as err:
    pretrained.load_encoder(bad)
  text = str(err.value)
  assert str(bad / "model.safetensors") in text
  assert "1 missing:\n    encoder.layers.1.attention.k_proj.bias" in text
  assert "1 unexpected:\n    encoder.extra_gate.weight" in text
  assert ("encoder.layers.0.feed_forward.output_dense.weight: expected (32, 64), found (32, 63)"
          in text)


@pytest.mark.parametrize("head,prefix,ignored", [
    ("HubertForSequenceClassification", "hubert.",
     {"classifier.bias", "classifier.weight", "projector.bias", "projector.weight"}),
    ("Wav2Vec2ForCTC", "wav2vec2.", {"lm_head.bias", "lm_head.weight"}),
    ("Wav2Vec2ForPreTraining", "wav2vec2.",
     {"project_hid.bias", "project_hid.weight", "project_q.bias", "project_q.weight",
      "quantizer.codevectors", "quantizer.weight_proj.bias", "quantizer.weight_proj.weight"}),
])
def test_task_checkpoints_load_their_encoder(tmp_path, head, prefix, ignored):
  config = HUBERT if head.startswith("Hubert") else w2v.PRESETS["tiny-wav2vec2"]
  hf = _hf_config(config)
  hf.vocab_size = 7
  hf.mask_time_prob = 0.05  # adds the SpecAugment embedding, which we skip on purpose
  torch.manual_seed(0)
  model = getattr(transformers, head)(hf)
  src = _save_torch(model, tmp_path)
  _, variables, loaded = pretrained.load_encoder(src)
  assert loaded == config
  state = load_file(os.path.join(src, "model.safetensors"))
  _, skipped = pretrained.hf_state_dict_to_flax(state, loaded)
  assert set(skipped) == ignored | {prefix + "masked_spec_embed"}
  # The flat map back gives exactly the encoder's tensors (legacy weight-norm names).
  ours = pretrained.flax_to_hf_state_dict(variables)
  theirs = {k[len(prefix):].replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"): v
            for k, v in state.items() if k.startswith(prefix) and "masked_spec_embed" not in k}
  assert ours.keys() == theirs.keys()
  for k in ours:
    np.testing.assert_array_equal(ours[k], theirs[k])


def test_bert_heads_prefix_no_pooler_and_gamma_beta(tmp_path, caplog):
  torch.manual_seed(0)
  model = transformers.BertForMaskedLM(_hf_config(BERT))
  src = _save_torch(model, tmp_path / "mlm")
  state = load_file(os.path.join(src, "model.safetensors"))
  assert not any(k.startswith("bert.pooler") for k in state)
  # The original bert-base-uncased .bin names its LayerNorm parameters gamma / beta.
  def gamma_beta(key):
    key = key.replace("LayerNorm.weight", "LayerNorm.gamma")
    return key.replace("LayerNorm.bias", "LayerNorm.beta")

  old = {gamma_beta(k): torch.tensor(v) for k, v in state.items()}
  legacy = tmp_path / "legacy"
  legacy.mkdir()
  torch.save(old, legacy / "pytorch_model.bin")
  shutil.copy(os.path.join(src, "config.json"), legacy / "config.json")
  with caplog.at_level("INFO", logger="jaxser.models.pretrained"):
    module, from_bin, config = pretrained.load_encoder(legacy)
  assert "without a pooler" in caplog.text and "cls.predictions" in caplog.text
  assert not config.add_pooling_layer
  _, from_st, _ = pretrained.load_encoder(src)
  _assert_same_tree(from_bin, from_st)
  out = jax.jit(module.apply)(from_bin, jnp.ones((1, 5), jnp.int32))
  assert out["pooler_output"] is None and out["last_hidden_state"].shape == (1, 5, 32)


def test_sentence_transformers_layout_and_family_check(tmp_path):
  src = _save_torch(transformers.BertModel(_hf_config(BERT)), tmp_path / "st" / "0_Transformer")
  # Old sentence-transformers layout: the BERT lives in 0_Transformer/, no config at the root.
  _, legacy_layout, _ = pretrained.load_encoder(tmp_path / "st")
  (tmp_path / "st" / "modules.json").write_text(json.dumps(
      [{"idx": 0, "name": "0", "path": "0_Transformer",
        "type": "sentence_transformers.models.Transformer"}]))
  _, with_modules, _ = pretrained.load_encoder(tmp_path / "st")
  _, direct, _ = pretrained.load_encoder(src)
  _assert_same_tree(legacy_layout, direct)
  _assert_same_tree(with_modules, direct)
  with pytest.raises(ValueError, match="family='hubert'"):
    pretrained.load_encoder(src, family="hubert")


def test_hub_name_resolves_through_local_cache_only(tmp_path):
  src = _save_torch(transformers.HubertModel(_hf_config(HUBERT)), tmp_path / "src")
  cache = tmp_path / "hub"
  commit = "0123456789abcdef0123456789abcdef01234567"
  repo = cache / "models--someone--tiny-hubert"
  shutil.copytree(src, repo / "snapshots" / commit)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)
  _, cached, config = pretrained.load_encoder("someone/tiny-hubert", cache_dir=str(cache))
  _, direct, _ = pretrained.load_encoder(src)
  _assert_same_tree(cached, direct)
  assert config == HUBERT
  with pytest.raises(FileNotFoundError, match="not a model in the local Hugging Face cache"):
    pretrained.load_encoder("someone/absent-model", cache_dir=str(cache))


def test_folded_weight_norm_checkpoint_loads(tmp_path):
  model = transformers.HubertModel(_hf_config(HUBERT))
  src = _save_torch(model, tmp_path / "wn")
  torch.nn.utils.parametrize.remove_parametrizations(model.encoder.pos_conv_embed.conv, "weight")
  folded = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  assert "encoder.pos_conv_embed.conv.weight" in folded
  (tmp_path / "folded").mkdir()
  save_file(folded, tmp_path / "folded" / "model.safetensors", metadata={"format": "pt"})
  shutil.copy(os.path.join(src, "config.json"), tmp_path / "folded" / "config.json")
  _, a, _ = pretrained.load_encoder(src)
  _, b, _ = pretrained.load_encoder(tmp_path / "folded")

  def conv_weight(variables):
    p = variables["params"]["encoder"]["pos_conv_embed"]["conv"]
    v = p["weight_v"]
    return p["weight_g"] * v / jnp.sqrt(jnp.sum(v * v, axis=(1, 2), keepdims=True))

  np.testing.assert_allclose(conv_weight(a), conv_weight(b), rtol=1e-6, atol=1e-7)
