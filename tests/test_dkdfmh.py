"""DKDFMH model: layer shapes and parameter count of a 2 s segment (200 x 40), head-fusion
attention against a hand computation, the CNN ablation, gradients, batch independence,
time masking, and the whole network against a PyTorch rendering of the head-fusion code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxser import profile
from jaxser.models.dkdfmh import DKDFMH, HeadFusionAttention

FRAMES, BANDS = 200, 40  # 2 s at a 0.01 s hop, 40 log filterbanks: the paper's input


def _features(batch, frames=FRAMES, seed=0):
  """Log-filterbank-like features: band offsets plus noise."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, frames, BANDS)) + np.linspace(-2.0, 3.0, BANDS)
  return jnp.asarray(x, jnp.float32)


def _variables(model, seed=0, frames=FRAMES):
  """Random variables in the model's structure (from `eval_shape` of `init`, so nothing is
  compiled): kernels scaled by 1 / sqrt(fan-in), biases and BN affines and running
  statistics moved away from their initial values so no layer is an identity."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), _features(1, frames),
                          jnp.asarray([frames]))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name, shape = path[-1].key, leaf.shape
    noise = rng.standard_normal(shape)
    if name == "kernel":  # conv [kh, kw, in, out], dense [in, out], attention [in, heads, hidden]
      value = noise / np.sqrt(shape[0] if len(shape) == 3 else np.prod(shape[:-1]))
    elif name in ("scale", "var"):
      value = rng.uniform(0.5, 2.0, shape)
    else:  # bias, mean
      value = 0.2 * noise
    return jnp.asarray(value, leaf.dtype)

  return jax.tree.map_with_path(fill, shapes)


def _shapes(inter):
  """Output shape per captured submodule or sown value."""
  out = {}
  for k, v in inter.items():
    if k == "__call__":
      continue
    out[k] = (v["__call__"] if isinstance(v, dict) else v)[0].shape
  return out


def test_layer_shapes_and_parameter_count_for_a_two_second_segment():
  model = DKDFMH(num_classes=4)
  x, length = _features(1), jnp.asarray([FRAMES])
  # Shapes only: tracing init and apply checks them without compiling anything.
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, length)
  table = profile.param_table(variables)
  expected = {
      "conv1a/kernel": (10, 2, 1, 8), "conv1b/kernel": (2, 8, 1, 8),
      "conv2/kernel": (3, 3, 16, 32), "conv3/kernel": (3, 3, 32, 48),
      "conv4/kernel": (3, 3, 48, 64), "conv5/kernel": (3, 3, 64, 80),
      "attention/query/kernel": (80, 4, 64), "attention/query/bias": (4, 64),
      "attention/key/kernel": (80, 4, 64), "attention/key/bias": (4, 64),
      "attention/value/kernel": (80, 4, 64), "attention/value/bias": (4, 64),
      "fc/kernel": (64, 4), "fc/bias": (4,),
  }
  for name, c in (("bn1a", 8), ("bn1b", 8), ("bn2", 32), ("bn3", 48), ("bn4", 64), ("bn5", 80)):
    expected.update({f"{name}/scale": (c,), f"{name}/bias": (c,)})
  assert {p: s for p, s, _ in table} == expected
  # Convs 288 + 4608 + 13824 + 27648 + 46080, BN 2 x 240, attention 3 x (80 x 256 + 256),
  # FC 64 x 4 + 4.
  assert sum(n for _, _, n in table) == 155_396
  assert set(variables["batch_stats"]) == {"bn1a", "bn1b", "bn2", "bn3", "bn4", "bn5"}

  # (10, 2) with padding (4, 0) and (2, 8) with (0, 3): both 199 x 39; pools floor-halve.
  out, inter = jax.eval_shape(
      lambda v: model.apply(v, x, length, capture_intermediates=True, mutable=["intermediates"]),
      variables)
  assert _shapes(inter["intermediates"]) == {
      "conv1a": (1, 199, 39, 8), "bn1a": (1, 199, 39, 8),
      "conv1b": (1, 199, 39, 8), "bn1b": (1, 199, 39, 8),
      "conv1": (1, 199, 39, 16),
      "conv2": (1, 199, 39, 32), "bn2": (1, 199, 39, 32), "pool2": (1, 99, 19, 32),
      "conv3": (1, 99, 19, 48), "bn3": (1, 99, 19, 48), "pool3": (1, 49, 9, 48),
      "conv4": (1, 49, 9, 64), "bn4": (1, 49, 9, 64),
      "conv5": (1, 49, 9, 80), "bn5": (1, 49, 9, 80),
      "attention": (1, 49, 9, 64), "Dropout_0": (1, 64), "fc": (1, 4),
  }
  assert out["logits"].shape == (1, 4) and out["embedding"].shape == (1, 64)


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _one_head(x, params, h):
  """Plain single-head attention of the head-fusion code, from the weights, in NumPy."""
  proj = {n: x @ np.asarray(params[n]["kernel"][:, h]) + np.asarray(params[n]["bias"][h])
          for n in ("query", "key", "value")}
  return np.maximum(_softmax(proj["query"] * proj["key"]) * proj["value"], 0.0)


@pytest.mark.parametrize("heads", [1, 3])
def test_head_fusion_attention_equals_hand_computation(heads):
  x = np.random.default_rng(heads).standard_normal((2, 7, 5, 80)).astype(np.float32)
  module = HeadFusionAttention(heads=heads, hidden=16)
  variables = module.init(jax.random.PRNGKey(heads), jnp.asarray(x))
  params = jax.tree.map(lambda p: p + 0.2, variables["params"])  # biases away from 0
  ours = np.asarray(module.apply({"params": params}, jnp.asarray(x)))
  want = np.mean([_one_head(x.astype(np.float64), params, h) for h in range(heads)], axis=0)
  assert ours.shape == (2, 7, 5, 16)
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


def test_cnn_ablation_has_no_attention():
  model = DKDFMH(num_classes=4, use_attention=False)
  variables = _variables(model, frames=50)
  table = profile.param_table(variables)
  assert not [p for p, _, _ in table if p.startswith("attention")]
  assert dict((p, s) for p, s, _ in table)["fc/kernel"] == (80, 4)
  assert sum(n for _, _, n in table) == 155_396 - 3 * (80 * 256 + 256) - 64 * 4 + 80 * 4
  # The embedding is the mean of bn5's ReLU'd map: nothing in between.
  out, inter = jax.jit(lambda v, x, l: model.apply(
      v, x, l, capture_intermediates=True, mutable=["intermediates"]))(
          variables, _features(1, 50), jnp.asarray([50]))
  bn5 = np.maximum(np.asarray(inter["intermediates"]["bn5"]["__call__"][0]), 0.0)
  assert out["embedding"].shape == (1, 80)
  np.testing.assert_allclose(out["embedding"][0], bn5[0].mean((0, 1)), rtol=1e-5, atol=1e-6)


def test_gradients_are_finite_and_reach_every_parameter():
  model = DKDFMH(num_classes=4, heads=2, attention_hidden=16, dropout=0.3)
  variables = _variables(model, frames=64)
  x, labels = _features(4, 64, seed=3), jnp.asarray([0, 1, 2, 3])

  def loss_fn(params):
    out, updates = model.apply({**variables, "params": params}, x, jnp.asarray([64, 64, 50, 30]),
                               train=True, rngs={"dropout": jax.random.PRNGKey(0)},
                               mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean(), updates

  (loss, updates), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  assert np.isfinite(float(loss))
  for path, g in jax.tree.flatten_with_path(grads)[0]:
    g = np.asarray(g)
    assert np.isfinite(g).all(), path
    assert np.abs(g).max() > 0, path
  # Training mode moves the running statistics towards the batch's (momentum 0.9).
  old, new = variables["batch_stats"]["bn5"]["mean"], updates["batch_stats"]["bn5"]["mean"]
  assert not np.allclose(old, new)


def test_eval_logits_do_not_depend_on_the_rest_of_the_batch():
  model = DKDFMH(num_classes=4)
  variables = _variables(model, seed=2, frames=100)
  apply = jax.jit(lambda x, l: model.apply(variables, x, l)["logits"])
  x, length = _features(3, 100, seed=5), jnp.asarray([100, 90, 60])
  together = np.asarray(apply(x, length))
  for i in range(3):
    alone = np.asarray(apply(x[i:i + 1], length[i:i + 1]))
    np.testing.assert_allclose(alone[0], together[i], rtol=1e-5, atol=1e-6)


def test_length_masks_the_time_pooling():
  model = DKDFMH(num_classes=4, heads=2, attention_hidden=8)
  variables = _variables(model, seed=3, frames=100)
  out, inter = jax.jit(lambda x, l: model.apply(
      variables, x, l, capture_intermediates=True, mutable=["intermediates"]))(
          _features(2, 100, seed=7), jnp.asarray([100, 70]))
  att = np.asarray(inter["intermediates"]["attention"]["__call__"][0])
  assert att.shape == (2, 24, 9, 8)
  # 100 -> 99 -> 49 -> 24 valid frames; 70 -> 69 -> 34 -> 17.
  np.testing.assert_allclose(out["embedding"][0], att[0].mean((0, 1)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["embedding"][1], att[1, :17].mean((0, 1)), rtol=1e-5, atol=1e-6)
  assert not np.allclose(att[1, :17].mean((0, 1)), att[1].mean((0, 1)), atol=1e-4)


def test_rejects_bad_settings_and_short_input_with_clear_errors():
  x = jnp.zeros((1, 4, BANDS))
  with pytest.raises(ValueError, match="at least 5 frames"):
    jax.eval_shape(DKDFMH(num_classes=4).init, jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="4 widths"):
    jax.eval_shape(DKDFMH(num_classes=4, features=(32, 48, 80)).init, jax.random.PRNGKey(0),
                   _features(1))


def _torch_reference(variables, heads, hidden, classes):
  """The head-fusion code's MACNN in PyTorch (NCHW), heads stacked on the time axis then one
  global average, loaded with our weights; convs without bias, as ours (BN removes it)."""
  import torch
  nn = torch.nn
  t = lambda a: torch.tensor(np.asarray(a))
  p, s = variables["params"], variables["batch_stats"]

  def conv(name, pad):
    k = np.asarray(p[name]["kernel"])  # [kh, kw, in, out] -> [out, in, kh, kw]
    c = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=pad, bias=False)
    c.weight.data = t(k.transpose(3, 2, 0, 1))
    return c

  def bn(name):
    b = nn.BatchNorm2d(p[name]["scale"].shape[0], eps=1e-5)
    b.weight.data, b.bias.data = t(p[name]["scale"]), t(p[name]["bias"])
    b.running_mean.data, b.running_var.data = t(s[name]["mean"]), t(s[name]["var"])
    return b.eval()

  def head(name, h):
    c = nn.Conv2d(80, hidden, 1)
    c.weight.data = t(np.asarray(p["attention"][name]["kernel"])[:, h].T[..., None, None])
    c.bias.data = t(p["attention"][name]["bias"][h])
    return c

  conv1a, conv1b = conv("conv1a", (4, 0)), conv("conv1b", (0, 3))
  convs = [conv(f"conv{i}", 1) for i in range(2, 6)]
  bns = {n: bn(n) for n in ("bn1a", "bn1b", "bn2", "bn3", "bn4", "bn5")}
  qkv = [[head(n, h) for n in ("query", "key", "value")] for h in range(heads)]
  fc = nn.Linear(hidden, classes)
  fc.weight.data, fc.bias.data = t(np.asarray(p["fc"]["kernel"]).T), t(p["fc"]["bias"])
  relu, maxp = torch.relu, nn.MaxPool2d(2)

  def forward(x):  # x: [B, 1, T, F]
    x = torch.cat((relu(bns["bn1a"](conv1a(x))), relu(bns["bn1b"](conv1b(x)))), 1)
    for i, c in enumerate(convs):
      x = relu(bns[f"bn{i + 2}"](c(x)))
      if i < 2:
        x = maxp(x)
    maps = [torch.softmax(q(x) * k(x), dim=1) * v(x) for q, k, v in qkv]
    x = relu(torch.cat(maps, 2)).mean((2, 3))
    return fc(x)

  return forward


def test_matches_a_torch_rendering_of_the_head_fusion_code():
  torch = pytest.importorskip("torch")
  heads, hidden = 3, 32
  model = DKDFMH(num_classes=4, heads=heads, attention_hidden=hidden)
  # 100 frames: 99 x 39 after conv1, odd sizes at both pools (PyTorch floors them too).
  variables = _variables(model, seed=4, frames=100)
  x = _features(2, 100, seed=11)
  ours = np.asarray(jax.jit(lambda x: model.apply(variables, x)["logits"])(x))
  with torch.no_grad():
    theirs = _torch_reference(variables, heads, hidden, 4)(torch.tensor(np.asarray(x))[:, None])
  np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-6)
