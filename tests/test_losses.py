"""Parity of jaxser.losses with independent PyTorch references, robustness, and the methods' combiners.

Parity runs in float64 in both frameworks (x64 is switched on only inside the `x64` fixture). Values
must agree to 1e-6 relative; gradients to 1e-5 relative, elementwise, with an absolute floor of 1e-5
times the largest reference gradient entry (entries far below the gradient's scale carry only rounding).
DKD is checked against mdistiller's formula in torch and, where float64 cannot evaluate that formula
(log of underflowed probabilities), against the same formula in mpmath at 400 digits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxser import losses
from jaxser.methods import dkd, emodistill, litecnn_kd, mlkd

VALUE_RTOL = 1e-6
GRAD_RTOL = 1e-5
NUM_CLASSES = 5
# "full": 6 examples, no mask; "single": a batch of one; "masked": 6 examples, 2 masked out.
BATCH_CASES = ("full", "single", "masked")
MASKED = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _batch(case: str):
  """(batch size, mask or None, indices of the examples torch sees)."""
  if case == "full":
    return 6, None, np.arange(6)
  if case == "single":
    return 1, None, np.arange(1)
  return 6, MASKED, np.flatnonzero(MASKED)


def _logits(rng, shape, scale):
  """Random logits; scale 50 spreads them uniformly over [-50, 50]."""
  if scale == 50:
    return rng.uniform(-50.0, 50.0, shape)
  return scale * rng.standard_normal(shape)


def _assert_value(value, ref):
  value, ref = float(value), float(ref)
  assert np.isfinite(value) and np.isfinite(ref), (value, ref)
  np.testing.assert_allclose(value, ref, rtol=VALUE_RTOL, atol=0)


def _assert_grad(grad, ref):
  grad, ref = np.asarray(grad), np.asarray(ref)
  assert grad.shape == ref.shape and grad.dtype == np.float64
  assert np.all(np.isfinite(grad)), grad
  np.testing.assert_allclose(grad, ref, rtol=GRAD_RTOL, atol=GRAD_RTOL * np.max(np.abs(ref)))


def _torch_reference(torch_loss, student, others):
  """Value and student gradient of torch_loss(student, *others) in torch float64."""
  s_t = torch.tensor(student, requires_grad=True)
  ref = torch_loss(s_t, *(torch.tensor(o) for o in others))
  ref.backward()
  return float(ref.detach()), s_t.grad.numpy()


def _check(value_and_grad, student, others, mask, keep, ref_value, ref_grad_kept):
  """value_and_grad(student, *others, mask) on the whole batch against a reference on the kept examples.

  Masked examples must get exactly zero gradient; kept ones the reference gradient. Returns the value.
  """
  value, grad = value_and_grad(jnp.asarray(student), *map(jnp.asarray, others), mask)
  _assert_value(value, ref_value)
  ref_grad = np.zeros_like(student)
  ref_grad[keep] = ref_grad_kept
  _assert_grad(grad, ref_grad)
  if mask is not None:
    assert np.all(np.asarray(grad)[mask == 0] == 0)
  return value


def _parity(value_and_grad, torch_loss, student, others, mask, keep):
  reference = _torch_reference(torch_loss, student[keep], [o[keep] for o in others])
  _check(value_and_grad, student, others, mask, keep, *reference)


def _student_grad(loss):
  """jit(value_and_grad) of loss w.r.t. its first argument; module-level losses compile once per shape."""
  return jax.jit(jax.value_and_grad(loss))


# ---------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("scale", [3.0, 50])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_parity(x64, case, scale, weighted, smoothing):
  rng = np.random.default_rng(0)
  b, mask, keep = _batch(case)
  logits = _logits(rng, (b, NUM_CLASSES), scale)
  labels = rng.integers(0, NUM_CLASSES, b)
  w = rng.uniform(0.2, 3.0, NUM_CLASSES) if weighted else None

  def torch_loss(s, y):
    return F.cross_entropy(s, y, weight=None if w is None else torch.tensor(w), label_smoothing=smoothing)

  _parity(lambda s, y, m: _ce_value_and_grad(s, y, m, None if w is None else jnp.asarray(w), smoothing),
          torch_loss, logits, (labels,), mask, keep)


@_student_grad
def _ce_value_and_grad(s, y, m, w, smoothing):
  return losses.cross_entropy(s, y, mask=m, class_weights=w, label_smoothing=smoothing)


# ---------------------------------------------------------------------------
# Hinton KD
# ---------------------------------------------------------------------------


def _torch_hinton(s, t, temperature):
  return F.kl_div(F.log_softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1),
                  reduction="batchmean") * temperature**2


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("scale", [3.0, 50])
@pytest.mark.parametrize("temperature", [0.1, 1.0, 10.0])
def test_hinton_kd_parity(x64, case, scale, temperature):
  rng = np.random.default_rng(1)
  b, mask, keep = _batch(case)
  student, teacher = _logits(rng, (b, NUM_CLASSES), scale), _logits(rng, (b, NUM_CLASSES), scale)
  _parity(lambda s, t, m: _hinton_value_and_grad(s, t, m, temperature),
          lambda s, t: _torch_hinton(s, t, temperature), student, (teacher,), mask, keep)


@_student_grad
def _hinton_value_and_grad(s, t, m, temperature):
  return losses.hinton_kd(s, t, temperature, mask=m)


@pytest.mark.parametrize("scale", [3.0, 50])
def test_kd_teacher_gradient_and_forward_mode(x64, scale):
  # The KL has a custom JVP: check its teacher side against torch, and forward mode against reverse.
  rng = np.random.default_rng(13)
  s, t = _logits(rng, (4, NUM_CLASSES), scale), _logits(rng, (4, NUM_CLASSES), scale)
  t_t = torch.tensor(t, requires_grad=True)
  _torch_hinton(torch.tensor(s), t_t, 4.0).backward()
  grad_t = jax.grad(lambda t: losses.hinton_kd(jnp.asarray(s), t, 4.0))(jnp.asarray(t))
  _assert_grad(grad_t, t_t.grad.numpy())
  y = rng.integers(0, NUM_CLASSES, 4)
  for fn in (lambda s: losses.hinton_kd(s, t, 4.0), lambda s: losses.dkd(s, t, y, alpha=1.0, beta=8.0,
                                                                          temperature=4.0)):
    _assert_grad(jax.jacfwd(fn)(jnp.asarray(s)), jax.grad(fn)(jnp.asarray(s)))


def test_hinton_kd_without_t2_scale(x64):
  rng = np.random.default_rng(2)
  s, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
  scaled = losses.hinton_kd(s, t, 4.0)
  plain = losses.hinton_kd(s, t, 4.0, t2_scale=False)
  _assert_value(plain, _torch_hinton(torch.tensor(s), torch.tensor(t), 4.0) / 16.0)
  _assert_value(scaled, 16.0 * plain)


# ---------------------------------------------------------------------------
# Decoupled KD
# ---------------------------------------------------------------------------


def _torch_dkd_mdistiller(s, t, y, temperature):
  """(TCKD, NCKD, smallest student binary probability) as mdistiller's dkd_loss computes them."""
  gt = F.one_hot(y, s.shape[1]).to(s.dtype)
  other = 1.0 - gt
  p_s, p_t = F.softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1)
  b_s = torch.stack([(p_s * gt).sum(1), (p_s * other).sum(1)], dim=1)
  b_t = torch.stack([(p_t * gt).sum(1), (p_t * other).sum(1)], dim=1)
  t2_per_batch = temperature**2 / y.shape[0]
  tckd = F.kl_div(torch.log(b_s), b_t, reduction="sum") * t2_per_batch
  nckd = F.kl_div(F.log_softmax(s / temperature - 1000.0 * gt, dim=1),
                  F.softmax(t / temperature - 1000.0 * gt, dim=1), reduction="sum") * t2_per_batch
  return tckd, nckd, float(b_s.detach().min())


def _mp_dkd_rows(s, t, y, temperature):
  """mdistiller's per-example (TCKD, NCKD), before the T²/B factor, in mpmath arithmetic."""

  def softmax(z):
    e = [mpmath.exp(v) for v in z]
    total = mpmath.fsum(e)
    return [v / total for v in e]

  def kl(p, q):
    return mpmath.fsum(pi * (mpmath.log(pi) - mpmath.log(qi)) for pi, qi in zip(p, q))

  def binary(p):
    return [p[y], mpmath.fsum(p[j] for j in range(len(p)) if j != y)]

  def push_out(z):
    return [v - 1000 if j == y else v for j, v in enumerate(z)]

  temperature = mpmath.mpf(temperature)
  z_s = [mpmath.mpf(v) / temperature for v in s]
  z_t = [mpmath.mpf(v) / temperature for v in t]
  return kl(binary(softmax(z_t)), binary(softmax(z_s))), kl(softmax(push_out(z_t)), softmax(push_out(z_s)))


def _dkd_inputs(case, scale):
  rng = np.random.default_rng(3)
  b, mask, keep = _batch(case)
  student, teacher = _logits(rng, (b, NUM_CLASSES), scale), _logits(rng, (b, NUM_CLASSES), scale)
  labels = rng.integers(0, NUM_CLASSES, b)
  return mask, keep, student, teacher, labels


@functools.lru_cache(maxsize=None)
def _mp_dkd(case, scale, temperature, with_grad):
  """mdistiller's TCKD and NCKD on the kept examples at 400 digits: ({part: value}, {part: grad} or None).

  400 digits resolve every probability down to e^-1000 (logits 50 at T=0.1) and any value in float64's
  range; gradients are central differences with step 1e-100, exact to far below float64 precision.
  """
  _, keep, student, teacher, labels = _dkd_inputs(case, scale)
  student, teacher, labels = student[keep], teacher[keep], labels[keep]
  b, c = student.shape
  with mpmath.workdps(400):
    scale_t2 = mpmath.mpf(temperature) ** 2 / b
    rows = [_mp_dkd_rows(list(student[i]), teacher[i], labels[i], temperature) for i in range(b)]
    values = {part: float(scale_t2 * mpmath.fsum(r[k] for r in rows))
              for k, part in enumerate(("tckd", "nckd"))}
    if not with_grad:
      return values, None
    grads = {"tckd": np.zeros((b, c)), "nckd": np.zeros((b, c))}
    h = mpmath.mpf(10) ** -100
    for i in range(b):
      for j in range(c):
        row = [mpmath.mpf(v) for v in student[i]]
        up, down = list(row), list(row)
        up[j] += h
        down[j] -= h
        f_up = _mp_dkd_rows(up, teacher[i], labels[i], temperature)
        f_down = _mp_dkd_rows(down, teacher[i], labels[i], temperature)
        for k, part in enumerate(("tckd", "nckd")):
          grads[part][i, j] = float(scale_t2 * (f_up[k] - f_down[k]) / (2 * h))
  return values, grads


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("scale", [3.0, 50])
@pytest.mark.parametrize("temperature", [0.1, 1.0, 4.0, 10.0])
@pytest.mark.parametrize("part", ["tckd", "nckd", "dkd"])
def test_dkd_parity(x64, case, scale, temperature, part):
  """Against mdistiller's formula in torch float64, and in mpmath where float64 cannot evaluate it.

  The torch form is unresolved where it takes log of a probability below float64's normal range (inf or
  few bits at logits 50, T=0.1), or where the value is below 1e-8·T² (log of probabilities summed to ~1
  carries ~1e-16 absolute error). Values are always also checked against the 400-digit evaluation.
  """
  mask, keep, student, teacher, labels = _dkd_inputs(case, scale)
  alpha, beta = 1.0, 8.0
  combine = {"tckd": lambda a, n: a, "nckd": lambda a, n: n, "dkd": lambda a, n: alpha * a + beta * n}[part]

  def torch_loss(s, t, y):
    tckd, nckd, _ = _torch_dkd_mdistiller(s, t, y, temperature)
    return combine(tckd, nckd)

  others = (teacher[keep], labels[keep])
  ref_value, ref_grad = _torch_reference(torch_loss, student[keep], others)
  min_b_s = _torch_dkd_mdistiller(*(torch.tensor(a) for a in (student[keep],) + others), temperature)[2]
  resolved = (np.isfinite(ref_value) and abs(ref_value) >= 1e-8 * temperature**2
              and (part == "nckd" or min_b_s >= np.finfo(np.float64).tiny))
  mp_values, mp_grads = _mp_dkd(case, scale, temperature, not resolved)
  exact = combine(mp_values["tckd"], mp_values["nckd"])
  if not resolved:
    ref_value, ref_grad = exact, combine(mp_grads["tckd"], mp_grads["nckd"])
  value = _check(lambda s, t, y, m: _dkd_value_and_grad(s, t, y, m, temperature, part, alpha, beta),
                 student, (teacher, labels), mask, keep, ref_value, ref_grad)
  _assert_value(value, exact)


@functools.partial(jax.jit, static_argnames=("part",))
def _dkd_value_and_grad(s, t, y, m, temperature, part, alpha, beta):
  def loss(s):
    if part == "dkd":
      return losses.dkd(s, t, y, alpha=alpha, beta=beta, temperature=temperature, mask=m)
    return getattr(losses, part)(s, t, y, temperature=temperature, mask=m)

  return jax.value_and_grad(loss)(s)


def test_dkd_warmup_factor():
  assert [float(losses.dkd_warmup_factor(e, 20)) for e in (0, 5, 20, 40)] == [0.0, 0.25, 1.0, 1.0]
  assert float(losses.dkd_warmup_factor(3, 0)) == 1.0


# ---------------------------------------------------------------------------
# Negative cosine, hidden-state MSE, triplet losses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("scale", [1.0, 50])
def test_negative_cosine_parity(x64, case, scale):
  rng = np.random.default_rng(5)
  b, mask, keep = _batch(case)
  student, teacher = _logits(rng, (b, 16), scale), _logits(rng, (b, 16), scale)
  _parity(_negcos_value_and_grad,
          lambda s, t: -F.cosine_similarity(s, t, dim=-1).mean(), student, (teacher,), mask, keep)
  value = float(losses.negative_cosine(student, -2.0 * student))
  np.testing.assert_allclose(value, 1.0, rtol=1e-12)


@_student_grad
def _negcos_value_and_grad(s, t, m):
  return losses.negative_cosine(s, t, mask=m)


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("masks", ["none", "frames", "frames+examples"])
def test_hidden_state_mse_parity(x64, stacked, masks):
  rng = np.random.default_rng(6)
  n_student, n_teacher, b, t, d = 3, 5, 4, 7, 6
  student = rng.standard_normal((n_student, b, t, d))
  teacher = rng.standard_normal((n_teacher, b, t, d))
  layer_map = ((2, 1), (4, 2), (0, 0))
  lengths = np.array([7, 3, 5, 1])
  frame_mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float64) if masks != "none" else None
  mask = np.array([1.0, 1.0, 0.0, 1.0]) if masks == "frames+examples" else None

  def jax_loss(s):
    hidden = s if stacked else tuple(s[i] for i in range(n_student))
    teach = jnp.asarray(teacher) if stacked else [jnp.asarray(h) for h in teacher]
    return losses.hidden_state_mse(hidden, teach, layer_map, frame_mask=frame_mask, mask=mask)

  valid = np.ones((b, t), bool) if frame_mask is None else frame_mask.astype(bool)
  if mask is not None:
    valid &= mask.astype(bool)[:, None]
  s_t = torch.tensor(student, requires_grad=True)
  ref = sum(F.mse_loss(s_t[sl][torch.tensor(valid)], torch.tensor(teacher[tl])[torch.tensor(valid)])
            for tl, sl in layer_map)
  ref.backward()
  value, grad = jax.value_and_grad(jax_loss)(jnp.asarray(student))
  _assert_value(value, ref.detach())
  _assert_grad(grad, s_t.grad.numpy())


def test_hidden_state_mse_rejects_bad_layer_map(x64):
  h = np.zeros((2, 1, 3, 2))
  with pytest.raises(ValueError, match="layer_map"):
    losses.hidden_state_mse(h, h, ((2, 0),))
  assert mlkd.mlkd_layer_map(3) == ((2, 1), (4, 2), (6, 3))


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_parity(x64, case, p, swap):
  rng = np.random.default_rng(7)
  b, mask, keep = _batch(case)
  anchor = rng.standard_normal((b, 8))
  positive = anchor + 0.5 * rng.standard_normal((b, 8))
  # Per-example spread of the negatives, so that both sides of the ReLU are covered.
  negative = anchor + rng.uniform(0.3, 3.0, (b, 1)) * rng.standard_normal((b, 8))

  def loss(a, pos, neg, m):
    return losses.triplet_margin(a, pos, neg, margin=1.0, p=p, swap=swap, mask=m)

  _parity(jax.value_and_grad(loss),
          lambda a, pos, neg: F.triplet_margin_loss(a, pos, neg, margin=1.0, p=p, eps=1e-6, swap=swap),
          anchor, (positive, negative), mask, keep)


def _torch_triplet_cogmen(anchor, positive, negatives):
  """m-muaz/Cogmen_SLT TripletLossCustom.forward, written out: a loop over examples."""
  pdist = torch.nn.PairwiseDistance(p=2)
  total = 0.0
  for i in range(anchor.shape[0]):
    loss_i = negatives.shape[1] * pdist(anchor[i], positive[i])
    for n in range(negatives.shape[1]):
      loss_i = loss_i - pdist(anchor[i], negatives[i, n])
    total = total + torch.relu(loss_i + 1.0)
  return torch.mean(total)


@pytest.mark.parametrize("case", BATCH_CASES)
def test_triplet_cogmen_parity(x64, case):
  rng = np.random.default_rng(8)
  b, mask, keep = _batch(case)
  anchor = rng.standard_normal((b, 8))
  # Positives close for some examples, far for others, so that both sides of the ReLU are covered.
  positive = anchor + rng.uniform(0.05, 1.5, (b, 1)) * rng.standard_normal((b, 8))
  negatives = anchor[:, None, :] + rng.standard_normal((b, 3, 8))
  loss = jax.value_and_grad(lambda a, pos, neg, m: losses.triplet_cogmen(a, pos, neg, mask=m))
  _parity(loss, _torch_triplet_cogmen,
          anchor, (positive, negatives), mask, keep)


def test_triplet_cogmen_mean_and_negative_mask(x64):
  rng = np.random.default_rng(9)
  anchor, positive = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
  negatives = rng.standard_normal((4, 3, 5))
  total = losses.triplet_cogmen(anchor, positive, negatives)
  _assert_value(losses.triplet_cogmen(anchor, positive, negatives, reduction="mean"), float(total) / 4)
  # Dropping negative 2 of every example equals passing only the first two.
  nm = np.array([[1.0, 1.0, 0.0]] * 4)
  _assert_value(losses.triplet_cogmen(anchor, positive, negatives, negative_mask=nm),
                losses.triplet_cogmen(anchor, positive, negatives[:, :2]))


# ---------------------------------------------------------------------------
# Mask semantics shared by all losses
# ---------------------------------------------------------------------------


def _all_losses(s, t, y, emb_s, emb_t, hidden_s, hidden_t, frame_mask, mask, temperature):
  """Every primitive on one batch, as a dict of scalars."""
  return {
      "ce": losses.cross_entropy(s, y, mask=mask, class_weights=jnp.linspace(0.5, 2.0, s.shape[1]),
                                 label_smoothing=0.1),
      "kd": losses.hinton_kd(s, t, temperature, mask=mask),
      "tckd": losses.tckd(s, t, y, temperature=temperature, mask=mask),
      "nckd": losses.nckd(s, t, y, temperature=temperature, mask=mask),
      "dkd": losses.dkd(s, t, y, alpha=1.0, beta=8.0, temperature=temperature, mask=mask),
      "negcos": losses.negative_cosine(emb_s, emb_t, mask=mask),
      "mse": losses.hidden_state_mse(hidden_s, hidden_t, ((1, 0), (2, 1)), frame_mask=frame_mask, mask=mask),
      "triplet": losses.triplet_margin(emb_s, emb_t, -emb_t, swap=True, mask=mask),
      "cogmen": losses.triplet_cogmen(emb_s, emb_t, jnp.stack([-emb_t, 2.0 * emb_t], axis=1), mask=mask),
  }


def _inputs(rng, b, scale, dtype):
  c, d, t = NUM_CLASSES, 8, 6
  return dict(
      s=jnp.asarray(_logits(rng, (b, c), scale), dtype),
      t=jnp.asarray(_logits(rng, (b, c), scale), dtype),
      y=jnp.asarray(rng.integers(0, c, b)),
      emb_s=jnp.asarray(_logits(rng, (b, d), scale), dtype),
      emb_t=jnp.asarray(_logits(rng, (b, d), scale), dtype),
      hidden_s=jnp.asarray(_logits(rng, (2, b, t, d), scale), dtype),
      hidden_t=jnp.asarray(_logits(rng, (3, b, t, d), scale), dtype),
      frame_mask=jnp.asarray(np.arange(t)[None, :] < rng.integers(1, t + 1, (b, 1)), dtype),
  )


def test_mask_weight_two_equals_duplicated_example(x64):
  rng = np.random.default_rng(10)
  x = _inputs(rng, 3, 3.0, jnp.float64)
  all_losses = jax.jit(_all_losses)
  weighted = all_losses(**x, mask=jnp.array([2.0, 1.0, 0.0]), temperature=2.0)
  rows = jnp.array([0, 0, 1])
  dup = {k: jnp.take(v, rows, axis=1 if k.startswith("hidden") else 0) for k, v in x.items()}
  reference = all_losses(**dup, mask=None, temperature=2.0)
  # Means weight the example twice; triplet_cogmen's sum counts it twice: both equal the duplicated batch.
  for name in weighted:
    _assert_value(weighted[name], reference[name])


# ---------------------------------------------------------------------------
# No NaN or inf: float32, jit and grad, extreme logits and temperatures, zero masks
# ---------------------------------------------------------------------------


@jax.jit
def _values_and_total_grad(student, fixed, mask, temperature):
  """Every loss's value, and the gradient of their sum w.r.t. the student inputs.

  A NaN or inf in any one loss's gradient survives the sum (inf − inf is NaN), so one backward pass
  checks them all.
  """

  def total(st):
    values = _all_losses(**st, **fixed, mask=mask, temperature=temperature)
    return sum(values.values()), values

  (_, values), grads = jax.value_and_grad(total, has_aux=True)(student)
  return values, grads


# float64 finiteness on these inputs is also asserted by every parity test above.
@pytest.mark.parametrize("dtype, case", [(jnp.float32, c) for c in BATCH_CASES + ("all_masked",)]
                         + [(jnp.float64, "all_masked")])
def test_finite_under_jit_and_grad(dtype, case):
  with jax.enable_x64(dtype == jnp.float64):
    rng = np.random.default_rng(11)
    b, mask, _ = _batch("full" if case == "all_masked" else case)
    if case == "all_masked":
      mask = np.zeros(b)
    x = _inputs(rng, b, 50, dtype)
    student = {k: x.pop(k) for k in ("s", "emb_s", "hidden_s")}
    m = None if mask is None else jnp.asarray(mask, dtype)
    for temperature in (0.1, 10.0):
      values, grads = _values_and_total_grad(student, x, m, jnp.asarray(temperature, dtype))
      for name, value in values.items():
        assert value.dtype == dtype and np.isfinite(float(value)), (name, temperature, value)
        if case == "all_masked":
          assert float(value) == 0.0, name
      for k, g in grads.items():
        assert g.dtype == dtype and np.all(np.isfinite(np.asarray(g))), (k, temperature)
        if case == "all_masked":
          assert np.all(np.asarray(g) == 0), k


# ---------------------------------------------------------------------------
# Each method's combiner (jaxser.methods.<paper>) equals the sum of its parts
# ---------------------------------------------------------------------------


def _combiner_inputs():
  x = _inputs(np.random.default_rng(12), 6, 3.0, jnp.float64)
  return x, x["s"], x["t"], x["y"], jnp.asarray(MASKED)


def test_emodistill_loss_equals_sum_of_parts(x64):
  x, s, t, y, mask = _combiner_inputs()
  rng = np.random.default_rng(13)
  s_l, t_l = (jnp.asarray(rng.standard_normal((6, NUM_CLASSES))) for _ in range(2))
  e_l, f_l, e_p, f_p = (jnp.asarray(rng.standard_normal((6, 8))) for _ in range(4))
  total, parts = emodistill.emodistill_loss(
      logits=s, labels=y, student_logits_l=s_l, student_logits_p=s, teacher_logits_l=t_l, teacher_logits_p=t,
      student_emb_l=e_l, student_emb_p=e_p, teacher_emb_l=f_l, teacher_emb_p=f_p, mask=mask)
  expected = {
      "kl_l": losses.hinton_kd(s_l, t_l, 5.0, mask=mask, t2_scale=False),
      "kl_p": losses.hinton_kd(s, t, 0.5, mask=mask, t2_scale=False),
      "negcos_l": losses.negative_cosine(e_l, f_l, mask=mask),
      "negcos_p": losses.negative_cosine(e_p, f_p, mask=mask),
      "ce": losses.cross_entropy(s, y, mask=mask),
  }
  _check_parts(parts, expected)
  _assert_value(total, 1.0 * (expected["kl_l"] + expected["kl_p"])
                + 10.0 * (expected["negcos_l"] + expected["negcos_p"]) + 2.0 * expected["ce"])


def test_mlkd_loss_equals_sum_of_parts(x64):
  x, s, t, y, mask = _combiner_inputs()
  total, parts = mlkd.mlkd_loss(s, t, y, x["hidden_s"], x["hidden_t"], mlkd.mlkd_layer_map(1),
                                frame_mask=x["frame_mask"], mask=mask)
  expected = {
      "kd": losses.hinton_kd(s, t, 7.0, mask=mask, t2_scale=False),
      "ce": losses.cross_entropy(s, y, mask=mask),
      "mse": losses.hidden_state_mse(x["hidden_s"], x["hidden_t"], ((2, 1),), frame_mask=x["frame_mask"],
                                     mask=mask),
  }
  _check_parts(parts, expected)
  _assert_value(total, 0.7 * expected["kd"] + 0.3 * expected["ce"] + expected["mse"])


def test_litecnn_kd_loss_equals_sum_of_parts(x64):
  _, s, t, y, mask = _combiner_inputs()
  total, parts = litecnn_kd.litecnn_kd_loss(s, t, y, mask=mask)
  expected = {"ce": losses.cross_entropy(s, y, mask=mask), "kd": losses.hinton_kd(s, t, 2.0, mask=mask)}
  _check_parts(parts, expected)
  _assert_value(total, 0.5 * expected["ce"] + 0.5 * expected["kd"])  # kd already carries T²


def test_dkdfmh_loss_equals_sum_of_parts(x64):
  _, s, t, y, mask = _combiner_inputs()
  total, parts = dkd.dkdfmh_loss(s, t, y, warmup_factor=losses.dkd_warmup_factor(5, 20), mask=mask)
  expected = {
      "ce": losses.cross_entropy(s, y, mask=mask),
      "tckd": losses.tckd(s, t, y, temperature=4.0, mask=mask),
      "nckd": losses.nckd(s, t, y, temperature=4.0, mask=mask),
  }
  _check_parts(parts, expected)
  _assert_value(total, expected["ce"] + 0.25 * losses.dkd(s, t, y, alpha=1.0, beta=8.0, temperature=4.0,
                                                          mask=mask))


def test_dkd_warmup_epochs_scale_the_dkd_term_by_the_trainers_epoch():
  """loss_cfg warmup_epochs: the DKD term weighs min((epoch + 1) / warmup, 1) (mdistiller's
  epochs count from 1), with the epoch the train step is in (state.step // steps_per_epoch)."""
  import flax.linen as nn
  import ml_collections
  import optax
  from jaxser import sharding, trainer

  class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, length, train=False):
      return {"logits": nn.Dense(NUM_CLASSES)(x.mean(axis=1))}

  rng = np.random.default_rng(0)
  batch = {"x": rng.normal(size=(4, 3, 2)).astype(np.float32), "length": np.full(4, 3),
           "label": np.array([0, 1, 2, 3]), "mask": np.ones(4, np.float32),
           "teacher": {"T": {"logits": (3 * rng.normal(size=(4, NUM_CLASSES))).astype(np.float32)}}}
  tx = optax.sgd(0.0)  # the parameters stay put, so every step sees the same parts
  mesh = sharding.make_mesh(jax.devices()[:1])
  model = Linear()
  cfg = ml_collections.ConfigDict(dict(teacher="T", alpha=1.0, beta=8.0, temperature=4.0,
                                       warmup_epochs=4))
  step = trainer.make_train_step(model, tx, dkd.dkd, cfg, mesh, steps_per_epoch=2)
  state = sharding.put_replicated(trainer.create_state(model, batch, tx, jax.random.PRNGKey(0)),
                                  mesh)
  weights = []
  for _ in range(10):  # epochs 0-4, two steps each
    state, m = step(state, batch)
    weights.append((float(m["loss"]) - float(m["ce"])) / (float(m["tckd"]) + 8 * float(m["nckd"])))
  np.testing.assert_allclose(weights, [0.25] * 2 + [0.5] * 2 + [0.75] * 2 + [1.0] * 4, rtol=1e-5)
  cfg.warmup_epochs = 0  # the default: no warm-up, as the DKDFMH paper
  state, m = trainer.make_train_step(model, tx, dkd.dkd, cfg, mesh, steps_per_epoch=2)(state, batch)
  np.testing.assert_allclose(float(m["loss"]), float(m["ce"]) + float(m["tckd"]) + 8 * float(m["nckd"]),
                             rtol=1e-5)


def _check_parts(parts, expected):
  assert set(parts) == set(expected)
  for name, value in expected.items():
    _assert_value(parts[name], value)
