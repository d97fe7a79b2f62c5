"""COGMEN smoke test: jit on a padded batch, shapes, padding never reaches valid utterances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxser.data.dialogues import pad_dialogues
from jaxser.data.synthetic_dialogues import DialogueSpec, make_synthetic_dialogues
from jaxser.models.cogmen import COGMEN, cogmen_heads

SPEC = DialogueSpec(audio_dim=16, visual_dim=12, text_dim=8, min_len=2, max_len=14)
MODEL = COGMEN(num_classes=4, hidden=16, context_ff=32, gnn_heads=2, dropout=0.1)


def batch(n=3, seed=0, max_len=None):
  data = make_synthetic_dialogues(n, seed, SPEC, test_fraction=0, dev_fraction=0)["train"]
  return {k: jnp.asarray(v) for k, v in pad_dialogues(data, "av", max_len).items()}


def init(b):
  return MODEL.init(jax.random.PRNGKey(0), b["x"], b["speakers"], b["lengths"])


def scramble_padding(b, seed=1):
  """Random features and speakers in every padded slot."""
  pad = jnp.arange(b["x"].shape[1])[None] >= b["lengths"][:, None]
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  noise = 100.0 * jax.random.normal(k1, b["x"].shape)
  return dict(b, x=jnp.where(pad[..., None], noise, b["x"]),
              speakers=jnp.where(pad, jax.random.randint(k2, pad.shape, 0, 2), b["speakers"]))


def test_jit_shapes_and_heads():
  b = batch()
  v = init(b)
  out = jax.jit(MODEL.apply)(v, b["x"], b["speakers"], b["lengths"])
  bsz, t, _ = b["x"].shape
  assert out["logits"].shape == (bsz, t, 4) and out["embedding"].shape == (bsz, t, 32)
  assert (out["mask"].sum(1) == b["lengths"]).all()
  assert cogmen_heads(100) == 10 and cogmen_heads(1380) == 10 and cogmen_heads(612) == 9
  assert cogmen_heads(28) == 7 and cogmen_heads(101) == 1
  assert v["params"]["gcn_conv1"]["weight"].shape == (8, 16, 16)


def test_padding_does_not_reach_valid_utterances():
  b = batch()
  v = init(b)
  f = jax.jit(MODEL.apply)
  mask = np.asarray(jnp.arange(b["x"].shape[1])[None] < b["lengths"][:, None])
  s = scramble_padding(b)
  clean = f(v, b["x"], b["speakers"], b["lengths"])
  noisy = f(v, s["x"], s["speakers"], s["lengths"])
  np.testing.assert_allclose(np.asarray(clean["logits"])[mask], np.asarray(noisy["logits"])[mask],
                             atol=1e-5)
  # Same in train mode (BatchNorm statistics over valid utterances only), same dropout draw.
  train = jax.jit(lambda v, x, s, l: MODEL.apply(v, x, s, l, train=True, mutable=["batch_stats"],
                                                 rngs={"dropout": jax.random.PRNGKey(5)}))
  (c, cs), (n, ns) = (train(v, b["x"], b["speakers"], b["lengths"]),
                      train(v, s["x"], s["speakers"], s["lengths"]))
  np.testing.assert_allclose(np.asarray(c["logits"])[mask], np.asarray(n["logits"])[mask],
                             atol=1e-4)
  for a, z in zip(jax.tree_util.tree_leaves(cs), jax.tree_util.tree_leaves(ns)):
    np.testing.assert_allclose(a, z, atol=1e-5)


def test_dialogue_alone_equals_dialogue_in_longer_batch():
  b = batch()
  v = init(b)
  longer = batch(max_len=b["x"].shape[1] + 7)
  out = MODEL.apply(v, b["x"], b["speakers"], b["lengths"])["logits"]
  out_long = MODEL.apply(v, longer["x"], longer["speakers"], longer["lengths"])["logits"]
  for i, n in enumerate(np.asarray(b["lengths"])):
    single = MODEL.apply(v, b["x"][i:i + 1, :n], b["speakers"][i:i + 1, :n], b["lengths"][i:i + 1])
    np.testing.assert_allclose(out[i, :n], single["logits"][0], atol=1e-5)
    np.testing.assert_allclose(out_long[i, :n], out[i, :n], atol=1e-5)


def test_empty_dialogue_is_finite_and_training_lowers_loss():
  b = batch(n=24, seed=2)
  b["lengths"] = b["lengths"].at[0].set(0)  # an all-padding row, as when filling the last batch
  v = init(b)
  opt = optax.adam(3e-3)

  def loss_fn(params, stats, key):
    out, upd = MODEL.apply({"params": params, "batch_stats": stats}, b["x"], b["speakers"],
                           b["lengths"], train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    valid = out["mask"]
    ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"],
                                                         jnp.maximum(b["labels"], 0))
    return jnp.sum(ce * valid) / jnp.sum(valid), upd["batch_stats"]

  @jax.jit
  def step(params, stats, opt_state, key):
    (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, key)
    upd, opt_state = opt.update(g, opt_state)
    return optax.apply_updates(params, upd), stats, opt_state, loss, g

  params, stats, opt_state = v["params"], v["batch_stats"], opt.init(v["params"])
  losses = []
  for i in range(40):
    params, stats, opt_state, loss, g = step(params, stats, opt_state, jax.random.PRNGKey(i))
    assert all(jnp.isfinite(x).all() for x in jax.tree_util.tree_leaves(g))
    losses.append(float(loss))
  print("loss first/last", losses[0], losses[-1])
  assert losses[-1] < 0.7 * losses[0]
