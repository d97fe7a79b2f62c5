"""Message passing on static-shape edge lists: segment mean / softmax, RGCNConv, TransformerConv.

Edges are index arrays `src`, `tgt` ([E], node ids) with a boolean `edge_mask` ([E]); a
message flows from `src` to `tgt` (PyTorch Geometric's default flow, `edge_index[0]` ->
`edge_index[1]`). Masked edges carry nothing, so a jitted caller can keep one fixed edge
list for batches whose real graphs differ. No graph library: jax.ops.segment_* only.
"""

from __future__ import annotations

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

# PyG's glorot() on a [R, in, out] weight uses fan_in=in, fan_out=out (not R*in): batch axis 0.
_glorot_per_relation = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", batch_axis=(0,))


def segment_mean(data, segment_ids, edge_mask, num_segments: int):
  """Mean of `data` rows ([E, D]) per segment over unmasked rows; empty segments give 0."""
  w = edge_mask.astype(data.dtype)
  total = jax.ops.segment_sum(data * w[:, None], segment_ids, num_segments)
  count = jax.ops.segment_sum(w, segment_ids, num_segments)
  # PyG's scatter-mean divides by clamp(count, min=1): an empty segment stays 0.
  return total / jnp.maximum(count, 1.0)[:, None]


def segment_softmax(logits, segment_ids, edge_mask, num_segments: int):
  """Softmax of `logits` ([E, H]) over the unmasked entries of each segment; masked -> 0."""
  neg = jnp.finfo(logits.dtype).min
  logits = jnp.where(edge_mask[:, None], logits, neg)
  seg_max = jax.ops.segment_max(logits, segment_ids, num_segments)
  # stop_gradient: the shift cancels in the ratio, as in PyG's softmax (which detaches it).
  shifted = logits - jax.lax.stop_gradient(seg_max)[segment_ids]
  e = jnp.where(edge_mask[:, None], jnp.exp(shifted), 0.0)
  denom = jax.ops.segment_sum(e, segment_ids, num_segments)
  # PyG adds 1e-16 to the denominator; kept for parity (and it keeps empty segments finite).
  return e / (denom[segment_ids] + 1e-16)


class RGCNConv(nn.Module):
  """PyG RGCNConv (no basis/block decomposition, aggr='mean', root weight, bias).

  out_i = x_i @ root + bias + sum_r mean_{j -> i with relation r} x_j @ weight[r].
  Parameter names and layouts match PyG's state dict: weight [R, in, out], root [in, out], bias.
  """

  features: int
  num_relations: int

  @nn.compact
  def __call__(self, x, src, tgt, rel, edge_mask):
    chex.assert_rank(x, 2)
    chex.assert_equal_shape([src, tgt, rel, edge_mask])
    n, d_in = x.shape
    r = self.num_relations
    weight = self.param("weight", _glorot_per_relation, (r, d_in, self.features))
    root = self.param("root", nn.initializers.xavier_uniform(), (d_in, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    # Mean over each (target, relation) pair first, then one matmul per relation: PyG's order.
    mean = segment_mean(x[src], tgt * r + rel, edge_mask, n * r).reshape(n, r, d_in)
    out = jnp.einsum("nri,rio->no", mean, weight) + x @ root + bias
    chex.assert_shape(out, (n, self.features))
    return out


class TransformerConv(nn.Module):
  """PyG TransformerConv with concat=True, beta=False, root_weight=True, no edge features.

  Per head h: alpha_ij = softmax_{j -> i}(q_i . k_j / sqrt(C)); out_i = concat_h(sum_j alpha_ij v_j)
  + lin_skip(x_i). Dense names match PyG (lin_query, lin_key, lin_value, lin_skip); Flax
  kernels are PyG weights transposed.
  """

  features: int  # C, per head
  heads: int = 1
  attention_dropout: float = 0.0  # PyG's `dropout` (on alpha); COGMEN leaves it at 0

  @nn.compact
  def __call__(self, x, src, tgt, edge_mask, *, train: bool = False):
    chex.assert_rank(x, 2)
    chex.assert_equal_shape([src, tgt, edge_mask])
    n = x.shape[0]
    h, c = self.heads, self.features
    q = nn.Dense(h * c, name="lin_query")(x).reshape(n, h, c)
    k = nn.Dense(h * c, name="lin_key")(x).reshape(n, h, c)
    v = nn.Dense(h * c, name="lin_value")(x).reshape(n, h, c)
    logits = jnp.sum(q[tgt] * k[src], axis=-1) / math.sqrt(c)  # [E, H]
    alpha = segment_softmax(logits, tgt, edge_mask, n)
    alpha = nn.Dropout(self.attention_dropout, deterministic=not train)(alpha)
    out = jax.ops.segment_sum(v[src] * alpha[..., None], tgt, n).reshape(n, h * c)
    out = out + nn.Dense(h * c, name="lin_skip")(x)
    chex.assert_shape(out, (n, h * c))
    return out
