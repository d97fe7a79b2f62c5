"""Flax wav2vec2 / HuBERT encoders against PyTorch transformers on tiny random checkpoints."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from jax import lax

from jaxser.models import pretrained
from jaxser.models import wav2vec2 as w2v

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SAMPLES = 2000
LENGTHS = np.array([SAMPLES, 1300])
NO_DROPOUT = dict(hidden_dropout=0.0, activation_dropout=0.0, attention_dropout=0.0,
                  feat_proj_dropout=0.0, layerdrop=0.0)


def _torch_model(config: w2v.Wav2Vec2Config, seed: int = 0):
  """A random HF encoder; every parameter (norms, biases, weight_g too) is perturbed."""
  hf = config.to_hf()
  hf.pop("architectures")
  torch.manual_seed(seed)
  model = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(**hf)).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  return model


def _checkpoint(config, directory):
  """Saves a random HF encoder of `config` (torch init: no JAX RNG compile) and loads it."""
  model = _torch_model(config)
  model.save_pretrained(directory)
  return model, *pretrained.load_encoder(directory)


def _batch():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, SAMPLES)).astype(np.float32)
  x[1, LENGTHS[1]:] = 0.0
  mask = (np.arange(SAMPLES)[None] < LENGTHS[:, None]).astype(np.int64)
  return x, mask


LAYOUTS = {
    # name: (preset, overrides). Even positional-conv kernels (16) take HF's frame drop.
    "hubert-base-layout": ("tiny-hubert", {}),
    "hubert-large-layout-odd-kernel-no-proj-ln": (
        "tiny-hubert-large", {"num_conv_pos_embeddings": 15, "feat_proj_layer_norm": False}),
    "wav2vec2-base-layout": ("tiny-wav2vec2", {}),
    "wav2vec2-large-layout": ("tiny-wav2vec2-large", {}),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_parity_with_torch(layout, tmp_path):
  preset, overrides = LAYOUTS[layout]
  config = w2v.PRESETS[preset].replace(**overrides, **NO_DROPOUT)
  tm, module, variables, loaded = _checkpoint(config, tmp_path)
  assert loaded == config
  x, mask = _batch()

  xt = torch.tensor(x, requires_grad=True)
  out_t = tm(xt, attention_mask=torch.tensor(mask), output_hidden_states=True)
  frames = tm._get_feature_vector_attention_mask(out_t.last_hidden_state.shape[1],
                                                 torch.tensor(mask)).numpy()
  assert frames[1].sum() < frames[0].sum() == frames.shape[1]
  # A scalar of every hidden state on valid frames, for the waveform gradient.
  weights = [np.random.default_rng(i).standard_normal(h.shape).astype(np.float32)
             * frames[..., None] for i, h in enumerate(out_t.hidden_states)]
  loss_t = sum((h * torch.tensor(wt)).sum() for h, wt in zip(out_t.hidden_states, weights))
  loss_t = loss_t + out_t.last_hidden_state.square().mul(torch.tensor(frames[..., None])).sum()
  loss_t.backward()

  def loss_j(wave):
    out = module.apply(variables, wave, lengths=jnp.asarray(LENGTHS))
    total = sum(jnp.sum(h * wt) for h, wt in zip(out["hidden_states"], weights))
    return total + jnp.sum(jnp.square(out["last_hidden_state"]) * frames[..., None]), out

  (_, out_j), grad_j = jax.jit(jax.value_and_grad(loss_j, has_aux=True))(jnp.asarray(x))
  np.testing.assert_array_equal(out_j["frame_mask"], frames)
  assert len(out_j["hidden_states"]) == len(out_t.hidden_states) == config.num_hidden_layers + 1
  pairs = list(zip(out_j["hidden_states"], out_t.hidden_states))
  pairs.append((out_j["last_hidden_state"], out_t.last_hidden_state))
  pairs.append((out_j["extract_features"], tm.feature_extractor(torch.tensor(x)).transpose(1, 2)))
  for ours, theirs in pairs:
    diff = np.abs(np.asarray(ours) - theirs.detach().numpy())[frames]
    assert diff.max() <= 1e-5, diff.max()
  grad_t = xt.grad.numpy()
  rel = np.linalg.norm(np.asarray(grad_j) - grad_t) / np.linalg.norm(grad_t)
  assert rel <= 1e-4, rel


def test_legacy_weight_norm_names_load_identically(tmp_path):
  from safetensors.numpy import load_file, save_file
  _torch_model(w2v.PRESETS["tiny-hubert"]).save_pretrained(tmp_path / "new")
  state = load_file(tmp_path / "new" / "model.safetensors")
  assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in state
  legacy = {k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
  assert "encoder.pos_conv_embed.conv.weight_g" in legacy
  (tmp_path / "old").mkdir()
  save_file(legacy, tmp_path / "old" / "model.safetensors", metadata={"format": "pt"})
  (tmp_path / "old" / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
  _, new, _ = pretrained.load_encoder(tmp_path / "new")
  _, old, _ = pretrained.load_encoder(tmp_path / "old")
  flat_new, flat_old = flatten_dict(new), flatten_dict(old)
  assert flat_new.keys() == flat_old.keys()
  for k in flat_new:
    np.testing.assert_array_equal(flat_new[k], flat_old[k])


def test_grouped_conv1d_custom_vjp_matches_xla():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((2, 21, 12)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((6, 3, 12)), jnp.float32)
  dy = jnp.asarray(rng.standard_normal((2, 22, 12)), jnp.float32)

  def reference(x, w):
    return lax.conv_general_dilated(x, w, (1,), [(3, 3)], dimension_numbers=("NWC", "WIO", "NWC"),
                                    feature_group_count=4)

  y_ref, vjp_ref = jax.vjp(reference, x, w)
  y, vjp = jax.vjp(lambda x, w: w2v.grouped_conv1d(x, w, 4, 3), x, w)
  np.testing.assert_allclose(y, y_ref, atol=1e-5)
  for ours, ref in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


def test_lengths_attention_mask_and_hf_length_formula(tmp_path):
  config = w2v.PRESETS["tiny-wav2vec2"]
  tm, module, variables, _ = _checkpoint(config, tmp_path)
  x, mask = _batch()

  @jax.jit
  def both(wave):
    return (module.apply(variables, wave, lengths=jnp.asarray(LENGTHS)),
            module.apply(variables, wave, attention_mask=jnp.asarray(mask)),
            module.apply(variables, wave))

  by_len, by_mask, no_len = both(jnp.asarray(x))
  np.testing.assert_array_equal(by_len["last_hidden_state"], by_mask["last_hidden_state"])
  assert bool(no_len["frame_mask"].all()) and not bool(by_len["frame_mask"].all())
  # Without lengths nothing is masked, so the padded example's valid frames change.
  assert not np.allclose(no_len["last_hidden_state"][1], by_len["last_hidden_state"][1], atol=1e-3)
  lengths = [400, 401, 1300, 1599, 16000]
  expect = tm._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
  assert list(np.asarray(w2v.feat_extract_output_lengths(jnp.asarray(lengths), config))) == expect
  assert w2v.min_input_samples(w2v.PRESETS["hubert-base-ls960"]) == 400


def test_dropout_layerdrop_remat_and_bf16(tmp_path):
  config = w2v.PRESETS["tiny-hubert-large"].replace(layerdrop=0.5)
  _, module, variables, loaded = _checkpoint(config, tmp_path)
  assert loaded.layerdrop == 0.5
  x = jnp.asarray(_batch()[0])
  evaluated = jax.jit(module.apply)(variables, x)["last_hidden_state"]

  @jax.jit
  def run(key):
    return module.apply(variables, x, train=True, rngs={"dropout": key})["last_hidden_state"]

  a, b = run(jax.random.key(1)), run(jax.random.key(1))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, evaluated, atol=1e-3)
  assert not np.allclose(a, run(jax.random.key(2)), atol=1e-3)

  def loss(params, remat):
    m = w2v.Wav2Vec2Model(config, remat=remat)
    return jnp.mean(m.apply({"params": params}, x)["last_hidden_state"] ** 2)

  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g_plain, g_remat = grad(variables["params"], False), grad(variables["params"], True)
  flat = lambda tree: np.concatenate([np.ravel(t) for t in jax.tree.leaves(tree)])
  rel = np.linalg.norm(flat(g_remat) - flat(g_plain)) / np.linalg.norm(flat(g_plain))
  assert rel <= 1e-5, rel
  low = jax.jit(w2v.Wav2Vec2Model(config, dtype=jnp.bfloat16).apply)(variables, x)
  low = low["last_hidden_state"]
  assert low.dtype == jnp.bfloat16
  rel = float(jnp.linalg.norm(low.astype(jnp.float32) - evaluated) / jnp.linalg.norm(evaluated))
  assert rel < 0.05, rel


@pytest.mark.parametrize("name", ["hubert-base-ls960", "hubert-large-ll60k", "wav2vec2-base",
                                  "wav2vec2-large-lv60"])
def test_preset_params_equal_hf_model(name):
  config = w2v.PRESETS[name]
  hf = config.to_hf()
  hf.pop("architectures")
  with torch.device("meta"):
    tm = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(**hf))
  hf_shapes = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): tuple(p.shape)
               for k, p in tm.named_parameters()}
  assert pretrained.hf_param_shapes(config) == hf_shapes
  assert w2v.count_params(config) == sum(p.numel() for p in tm.parameters())


def test_distil_from_teacher_copies_chosen_layers(tmp_path):
  teacher = w2v.PRESETS["tiny-wav2vec2"].replace(num_hidden_layers=4)
  _, _, tv, _ = _checkpoint(teacher, tmp_path)
  student, sv = w2v.distil_from_teacher(teacher, tv, layers=(2, 4))
  assert student.num_hidden_layers == 2
  assert student.replace(num_hidden_layers=4) == teacher
  t_flat, s_flat = flatten_dict(tv["params"]), flatten_dict(sv["params"])
  in_layers = lambda path: path[:2] == ("encoder", "layers")
  for path, value in s_flat.items():
    # Student layer i is teacher layer layers[i] (1-based): 0 -> HF layers.1, 1 -> layers.3.
    src = ("encoder", "layers", str(2 * int(path[2]) + 1)) + path[3:] if in_layers(path) else path
    np.testing.assert_array_equal(value, t_flat[src])
  assert {p for p in t_flat if not in_layers(p)} == {p for p in s_flat if not in_layers(p)}
  assert len(s_flat) == len(t_flat) - 2 * len([p for p in t_flat if p[2:3] == ("0",)
                                               and in_layers(p)])
  out = jax.jit(w2v.Wav2Vec2Model(student).apply)(sv, jnp.asarray(_batch()[0]))
  assert len(out["hidden_states"]) == 3
  with pytest.raises(ValueError, match="1-based"):
    w2v.distil_from_teacher(teacher, tv, layers=(0, 2))
  with pytest.raises(ValueError, match="num_hidden_layers=4"):
    w2v.distil_from_teacher(teacher, tv, layers=(2, 5))
