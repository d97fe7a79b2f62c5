"""Shared distillation loss building blocks as pure functions over batches.

CE, Hinton KD, decoupled KD (TCKD, NCKD and their sum), negative cosine, hidden-state MSE
and triplet losses; each paper's combiner of them is in its `jaxser/methods/<paper>.py`.

Every loss takes an optional per-example `mask` (float [B]; 0/1 or weights). A
masked-out example contributes nothing, and a mean is taken over the sum of the
mask, so that an all-zero mask gives 0 instead of NaN. Log-probabilities are
computed in log space throughout, so large logits and small temperatures give
finite values and gradients in float32 too.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import chex
import jax
import jax.numpy as jnp

Array = jax.Array
HiddenStates = Union[Sequence[Array], Array]

# mdistiller pushes the target class out of the non-target softmax by subtracting
# this constant from the temperature-scaled logit; kept as is for parity.
_DKD_PUSH_OUT = 1000.0


def _check_temperature(temperature) -> None:
  if isinstance(temperature, (int, float)) and temperature <= 0:
    raise ValueError(f"losses: temperature must be > 0, got {temperature}; fix the loss temperature setting")


def _check_labels(logits: Array, labels: Array) -> None:
  chex.assert_rank([logits, labels], [2, 1])
  chex.assert_equal_shape_prefix([logits, labels], 1)
  chex.assert_type(labels, int)


def _reduce(values: Array, mask: Optional[Array], reduction: str = "mean") -> Array:
  """Mask-weighted mean (or sum) of per-example values [B]; 0 for an all-zero mask."""
  chex.assert_rank(values, 1)
  if mask is None:
    return jnp.mean(values) if reduction == "mean" else jnp.sum(values)
  mask = jnp.asarray(mask, values.dtype)
  chex.assert_equal_shape([values, mask])
  # where, not a product: padded examples may hold garbage (inf) that 0 * inf would turn into NaN.
  total = jnp.sum(jnp.where(mask != 0, mask * values, 0))
  if reduction == "sum":
    return total
  weight = jnp.sum(mask)
  return total / jnp.where(weight != 0, weight, 1)


def _softmax_parts(z: Array):
  """(log p, p, top-class mask, 1 − p_top) over the last axis, with log p = (z − max) − log1p(rest).

  jax.nn.log_softmax rounds log p_top to 0 once the other classes hold less than 1e-16 of the mass;
  log1p, and 1 − p_top = rest / (1 + rest), keep that mass, which is the whole KL (and its gradient)
  when teacher and student put nearly all their mass on the same class.
  """
  top = jnp.argmax(z, axis=-1)[..., None]
  shifted = z - jnp.take_along_axis(z, top, axis=-1)
  is_top = jnp.arange(z.shape[-1]) == top
  rest = jnp.sum(jnp.where(is_top, 0, jnp.exp(shifted)), axis=-1, keepdims=True)
  log_p = shifted - jnp.log1p(rest)
  return log_p, jnp.exp(log_p), is_top, rest / (1 + rest)


@jax.custom_jvp
def _kl_logits(teacher_z: Array, student_z: Array) -> Array:
  """KL(softmax(teacher_z) || softmax(student_z)) over the last axis, [..., K] -> [...]."""
  log_p, p, _, _ = _softmax_parts(teacher_z)
  log_q = _softmax_parts(student_z)[0]
  return jnp.sum(p * (log_p - log_q), axis=-1)


@_kl_logits.defjvp
def _kl_logits_jvp(primals, tangents):
  # Autodiff would form q − p as (1 − ε_q) − (1 − ε_p) on a shared top class and lose it; the
  # complements are exact, so that entry is taken as (1 − p_top) − (1 − q_top).
  teacher_z, student_z = primals
  d_teacher, d_student = tangents
  log_p, p, p_is_top, p_rest = _softmax_parts(teacher_z)
  log_q, q, q_is_top, q_rest = _softmax_parts(student_z)
  kl = jnp.sum(p * (log_p - log_q), axis=-1)
  grad_student = jnp.where(p_is_top & q_is_top, p_rest - q_rest, q - p)
  grad_teacher = p * ((log_p - log_q) - kl[..., None])
  return kl, jnp.sum(grad_teacher * d_teacher, axis=-1) + jnp.sum(grad_student * d_student, axis=-1)


def _norm(x: Array, p: float) -> Array:
  """p-norm over the last axis with a zero gradient at 0 (as torch.norm has)."""
  if p == 2.0:
    sq = jnp.sum(x * x, axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)
  s = jnp.sum(jnp.abs(x) ** p, axis=-1)
  positive = s > 0
  return jnp.where(positive, jnp.where(positive, s, 1) ** (1.0 / p), 0)


def _pairwise_distance(x1: Array, x2: Array, p: float, eps: float) -> Array:
  """torch.pairwise_distance: ||x1 - x2 + eps||_p over the last axis."""
  if not p >= 1.0 or p == float("inf"):
    raise ValueError(f"losses: distance norm p must be finite and >= 1, got {p}; fix the triplet p setting")
  return _norm(x1 - x2 + eps, p)


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------


def cross_entropy(
    logits: Array,
    labels: Array,
    *,
    mask: Optional[Array] = None,
    class_weights: Optional[Array] = None,
    label_smoothing: float = 0.0,
) -> Array:
  """Softmax cross-entropy, as torch F.cross_entropy(weight=, label_smoothing=), reduction mean.

  With class weights the mean is weighted by class_weights[label] * mask, as in torch.
  """
  _check_labels(logits, labels)
  num_classes = logits.shape[-1]
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  if class_weights is None:
    weights = jnp.ones((num_classes,), log_probs.dtype)
  else:
    weights = jnp.asarray(class_weights, log_probs.dtype)
    chex.assert_shape(weights, (num_classes,))
  label_weight = weights[labels]
  per_example = label_weight * nll
  if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):  # may be traced
    smooth = -jnp.sum(log_probs * weights, axis=-1)
    per_example = (1.0 - label_smoothing) * per_example + (label_smoothing / num_classes) * smooth
  # torch normalises by Σ weight[label] (times the mask here), also for the smoothing term.
  if mask is None:
    total, norm = jnp.sum(per_example), jnp.sum(label_weight)
  else:
    mask = jnp.asarray(mask, log_probs.dtype)
    chex.assert_equal_shape([per_example, mask])
    total = jnp.sum(jnp.where(mask != 0, mask * per_example, 0))
    norm = jnp.sum(mask * label_weight)
  return total / jnp.where(norm != 0, norm, 1)


def hinton_kd(
    student_logits: Array,
    teacher_logits: Array,
    temperature,
    *,
    mask: Optional[Array] = None,
    t2_scale: bool = True,
) -> Array:
  """Hinton et al. 2015 KD: KL(softmax(t/T) || softmax(s/T)), batchmean, times T² when t2_scale.

  Equals torch F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') * T².
  For several teachers with their own temperatures (EmoDistill: τ_L, τ_P), call it once per teacher.
  """
  chex.assert_rank([student_logits, teacher_logits], 2)
  chex.assert_equal_shape([student_logits, teacher_logits])
  _check_temperature(temperature)
  per_example = _kl_logits(teacher_logits / temperature, student_logits / temperature)
  loss = _reduce(per_example, mask)
  return loss * temperature**2 if t2_scale else loss


def _tckd_rows(student_logits: Array, teacher_logits: Array, labels: Array, temperature) -> Array:
  """Per-example TCKD: KL over the binary [p_target, p_rest] pair.

  The pair is the softmax of the two logits [z_target, logsumexp(z_rest)], so log p_target and log p_rest
  never go through log(0), unlike mdistiller's log of summed probabilities.
  """

  def binary_logits(z):
    is_target = jax.nn.one_hot(labels, z.shape[-1], dtype=bool)
    z_target = jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    return jnp.stack([z_target, jax.nn.logsumexp(z, axis=-1, where=~is_target)], axis=-1)

  return _kl_logits(binary_logits(teacher_logits / temperature), binary_logits(student_logits / temperature))


def _nckd_rows(student_logits: Array, teacher_logits: Array, labels: Array, temperature) -> Array:
  """Per-example NCKD: KL over classes with the target logit pushed out by -1000 (mdistiller)."""
  push = _DKD_PUSH_OUT * jax.nn.one_hot(labels, student_logits.shape[-1], dtype=student_logits.dtype)
  return _kl_logits(teacher_logits / temperature - push, student_logits / temperature - push)


def _check_dkd(student_logits: Array, teacher_logits: Array, labels: Array, temperature) -> None:
  _check_labels(student_logits, labels)
  chex.assert_equal_shape([student_logits, teacher_logits])
  _check_temperature(temperature)
  if student_logits.shape[-1] < 2:
    raise ValueError(f"losses: DKD needs at least 2 classes, got logits of shape {student_logits.shape}")


def tckd(
    student_logits: Array, teacher_logits: Array, labels: Array, *, temperature, mask: Optional[Array] = None
) -> Array:
  """Decoupled KD's TCKD (Zhao et al., CVPR 2022): KL(b_T || b_S), b = [p_target, p_rest], times T², mean."""
  _check_dkd(student_logits, teacher_logits, labels, temperature)
  return _reduce(_tckd_rows(student_logits, teacher_logits, labels, temperature), mask) * temperature**2


def nckd(
    student_logits: Array, teacher_logits: Array, labels: Array, *, temperature, mask: Optional[Array] = None
) -> Array:
  """Decoupled KD's NCKD (Zhao et al., CVPR 2022): KL(p̂_T || p̂_S) over non-target classes, × T², mean.

  p̂ is softmax(z/T − 1000·onehot(target)), mdistiller's way of leaving out the target class.
  """
  _check_dkd(student_logits, teacher_logits, labels, temperature)
  return _reduce(_nckd_rows(student_logits, teacher_logits, labels, temperature), mask) * temperature**2


def dkd(
    student_logits: Array,
    teacher_logits: Array,
    labels: Array,
    *,
    alpha: float,
    beta: float,
    temperature,
    mask: Optional[Array] = None,
) -> Array:
  """Decoupled KD (Zhao et al., CVPR 2022): DKD = α·TCKD + β·NCKD, with mdistiller's DKD.py semantics.

  Both terms are scaled by T² and summed over the batch / batch size (mask-weighted mean here).
  """
  target = tckd(student_logits, teacher_logits, labels, temperature=temperature, mask=mask)
  non_target = nckd(student_logits, teacher_logits, labels, temperature=temperature, mask=mask)
  return alpha * target + beta * non_target


def dkd_warmup_factor(epoch, warmup_epochs):
  """mdistiller's DKD warm-up weight min(epoch / warmup_epochs, 1); 1 when warmup_epochs <= 0."""
  if isinstance(warmup_epochs, (int, float)) and warmup_epochs <= 0:
    return jnp.ones((), jnp.result_type(float))
  return jnp.minimum(jnp.asarray(epoch, jnp.result_type(float)) / warmup_epochs, 1.0)


def negative_cosine(
    student_emb: Array, teacher_emb: Array, *, mask: Optional[Array] = None, eps: float = 1e-8
) -> Array:
  """EmoDistill (Shome & Etemad) eq. 3-4: mean over examples of −cos(z', z).

  This is the negative cosine similarity itself (values in [−1, 1]), not 1 − cos. cos is torch
  F.cosine_similarity(dim=-1, eps=1e-8): each norm is clamped below at eps.
  """
  chex.assert_rank(student_emb, 2)
  chex.assert_equal_shape([student_emb, teacher_emb])
  s = student_emb / jnp.maximum(_norm(student_emb, 2.0), eps)[:, None]
  t = teacher_emb / jnp.maximum(_norm(teacher_emb, 2.0), eps)[:, None]
  return _reduce(-jnp.sum(s * t, axis=-1), mask)


def hidden_state_mse(
    student_hidden: HiddenStates,
    teacher_hidden: HiddenStates,
    layer_map: Sequence[tuple[int, int]],
    *,
    frame_mask: Optional[Array] = None,
    mask: Optional[Array] = None,
) -> Array:
  """MLKD (Liu et al., arXiv 2312.13556) eq. 1 L_MSE: Σ over (teacher_layer, student_layer) of MSE(h_t, h_s).

  Hidden states are indexed by layer (a tuple/list of [B, T, D] or one [L, B, T, D] array). Each MSE is the
  mean of the squared error over valid frames × D, frames weighted by frame_mask [B, T] times mask [B].
  """
  if not layer_map:
    raise ValueError("losses.hidden_state_mse: layer_map is empty; give (teacher_layer, student_layer) pairs")
  n_student, n_teacher = len(student_hidden), len(teacher_hidden)
  total = 0.0
  for t_layer, s_layer in layer_map:
    if not (0 <= t_layer < n_teacher and 0 <= s_layer < n_student):
      raise ValueError(
          f"losses.hidden_state_mse: layer pair (teacher {t_layer}, student {s_layer}) is out of range for "
          f"{n_teacher} teacher and {n_student} student hidden states; fix layer_map"
      )
    h_s, h_t = student_hidden[s_layer], teacher_hidden[t_layer]
    chex.assert_rank(h_s, 3)
    chex.assert_equal_shape([h_s, h_t])
    sq = jnp.sum((h_s - h_t) ** 2, axis=-1)  # [B, T]
    weight = jnp.ones(sq.shape, sq.dtype)
    if frame_mask is not None:
      chex.assert_equal_shape([sq, frame_mask])
      weight = weight * jnp.asarray(frame_mask, sq.dtype)
    if mask is not None:
      chex.assert_shape(mask, sq.shape[:1])
      weight = weight * jnp.asarray(mask, sq.dtype)[:, None]
    num = jnp.sum(jnp.where(weight != 0, weight * sq, 0))
    den = jnp.sum(weight) * h_s.shape[-1]
    total = total + num / jnp.where(den != 0, den, 1)
  return jnp.asarray(total)


def triplet_margin(
    anchor: Array,
    positive: Array,
    negative: Array,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    mask: Optional[Array] = None,
) -> Array:
  """Triplet margin loss (Balntas et al. 2016), as torch F.triplet_margin_loss, reduction mean.

  mean(max(d(a, p) − d(a, n) + margin, 0)) with d(x, y) = ||x − y + eps||_p (torch.pairwise_distance);
  swap uses min(d(a, n), d(p, n)) as the negative distance.
  """
  chex.assert_rank(anchor, 2)
  chex.assert_equal_shape([anchor, positive, negative])
  d_pos = _pairwise_distance(anchor, positive, p, eps)
  d_neg = _pairwise_distance(anchor, negative, p, eps)
  if swap:
    d_neg = jnp.minimum(d_neg, _pairwise_distance(positive, negative, p, eps))
  return _reduce(jax.nn.relu(margin + d_pos - d_neg), mask)


def triplet_cogmen(
    anchor: Array,
    positive: Array,
    negatives: Array,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    mask: Optional[Array] = None,
    negative_mask: Optional[Array] = None,
    reduction: str = "sum",
) -> Array:
  """N-way triplet loss of COGMEN KD (m-muaz/Cogmen_SLT custom/model.py TripletLossCustom).

  Per example: relu(N·d(a, p) − Σ_n d(a, n_n) + margin), with d = nn.PairwiseDistance(p=2), i.e.
  ||x − y + 1e-6||_2.
  The stored reference clamps with ReLU and sums over the batch (its torch.mean acts on an already summed
  0-d tensor), so the default reduction is "sum"; "mean" gives the mask-weighted mean instead.
  anchor, positive [B, D]; negatives [B, N, D]; negative_mask [B, N] drops padded negatives (N counts
  the rest; an addition of ours, the reference takes a ragged list).
  """
  chex.assert_rank([anchor, positive, negatives], [2, 2, 3])
  chex.assert_equal_shape([anchor, positive])
  chex.assert_equal_shape_prefix([anchor, negatives], 1)
  chex.assert_equal_shape_suffix([anchor, negatives], 1)
  if reduction not in ("sum", "mean"):
    raise ValueError(f"losses.triplet_cogmen: reduction must be 'sum' or 'mean', got {reduction!r}")
  d_pos = _pairwise_distance(anchor, positive, p, eps)  # [B]
  d_neg = _pairwise_distance(anchor[:, None, :], negatives, p, eps)  # [B, N]
  if negative_mask is None:
    n_neg = jnp.full(d_pos.shape, negatives.shape[1], d_pos.dtype)
    sum_neg = jnp.sum(d_neg, axis=-1)
  else:
    chex.assert_equal_shape([d_neg, negative_mask])
    nm = jnp.asarray(negative_mask, d_neg.dtype)
    n_neg = jnp.sum(nm, axis=-1)
    sum_neg = jnp.sum(jnp.where(nm != 0, nm * d_neg, 0), axis=-1)
  return _reduce(jax.nn.relu(n_neg * d_pos - sum_neg + margin), mask, reduction)
