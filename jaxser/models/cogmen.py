"""COGMEN (Joshi et al., NAACL 2022): utterance features -> dialogue graph -> emotion per utterance.

Reference: github.com/Exploration-Lab/COGMEN, cogmen/model/{COGMEN,SeqContext,GNN,Classifier,
functions}.py. Pipeline: transformer encoder over the dialogue (`SeqContext`, rnn="transformer")
-> Linear to `hidden` -> utterance graph (`batch_graphify`/`edge_perms`) -> RGCNConv ->
TransformerConv (heads concatenated) -> BatchNorm -> LeakyReLU -> Linear/ReLU/Dropout/Linear.

A batch is padded dialogues x [B, T, D], speakers [B, T], lengths [B]. The graph is over all
B*T slots with one static edge list (every in-window pair of slots) and an edge mask, so one jit
serves every batch of that shape and padded utterances send and receive nothing.

Choices where the reference differs or is silent:
- COGMEN runs the encoder without a key padding mask (padding zeros are attended to); here
  padded keys are masked so a dialogue's output does not depend on its batch's padding.
- Like the reference, no positional encoding enters the encoder (its `encoding_layer` is unused).
- BatchNorm statistics are taken over valid utterances only (COGMEN drops padding before the
  GNN, so its BatchNorm1d sees exactly those); Flax keeps the biased variance in its running
  average where PyTorch keeps the unbiased one.
- The optional Highway layer (`use_highway`, off by default) and MaskedEmotionAtt (built but
  never called) are left out. Initialisation is Flax's default except RGCN's glorot (as PyG).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxser.models.graph import RGCNConv, TransformerConv


def num_relations(n_speakers: int) -> int:
  """COGMEN's GNN: 2 * n_speakers**2 relation types (speaker pair x direction)."""
  return 2 * n_speakers ** 2


def cogmen_heads(input_dim: int) -> int:
  """SeqContext's head count: the first h in 7..14 that divides the input size, else 1."""
  return next((h for h in range(7, 15) if input_dim % h == 0), 1)


def window_pairs(max_len: int, window_past: int, window_future: int):
  """Static (src, tgt) slot pairs of `edge_perms(max_len, wp, wf)`, sorted; -1 = unbounded.

  edge_perms adds (j, k) for every k in [j - wp, j + wf] (clipped to the dialogue), so node j
  *sends* to its window. Restricting these pairs to src, tgt < L gives exactly
  edge_perms(L, wp, wf), which is what the per-dialogue edge mask does.
  """
  past = max_len - 1 if window_past == -1 else min(window_past, max_len - 1)
  future = max_len - 1 if window_future == -1 else min(window_future, max_len - 1)
  j = np.arange(max_len)[:, None]
  k = j + np.arange(-past, future + 1)[None, :]
  keep = (k >= 0) & (k < max_len)
  src, tgt = np.broadcast_to(j, k.shape)[keep], k[keep]
  return src.astype(np.int32), tgt.astype(np.int32)


class Edges(NamedTuple):
  """Flat edge list over B*T node slots (node id = b * T + t); each field [B * E_T]."""

  src: jnp.ndarray
  tgt: jnp.ndarray
  rel: jnp.ndarray
  mask: jnp.ndarray


def dialogue_edges(lengths, speakers, *, window_past: int = 5, window_future: int = 5,
                   n_speakers: int = 2) -> Edges:
  """COGMEN's `batch_graphify` edges for padded dialogues, as a static list with a mask.

  Relation id = edge_type_to_idx[f"{s_src}{s_tgt}{c}"] = (s_src * n + s_tgt) * 2 + c, with
  c = 0 when src < tgt (edge to a later utterance) and c = 1 otherwise, self-loops included.
  Speakers must lie in [0, n_speakers) on valid slots (not checkable under jit).
  """
  chex.assert_rank(speakers, 2)
  chex.assert_shape(lengths, (speakers.shape[0],))
  b, t = speakers.shape
  src_l, tgt_l = window_pairs(t, window_past, window_future)
  mask = (src_l[None] < lengths[:, None]) & (tgt_l[None] < lengths[:, None])  # [B, E_T]
  direction = (src_l >= tgt_l).astype(np.int32)
  rel = (speakers[:, src_l] * n_speakers + speakers[:, tgt_l]) * 2 + direction[None]
  # Masked edges get relation 0 so padding speaker values never index out of range.
  rel = jnp.where(mask, rel, 0)
  offset = (jnp.arange(b, dtype=jnp.int32) * t)[:, None]
  return Edges(src=(offset + src_l[None]).reshape(-1), tgt=(offset + tgt_l[None]).reshape(-1),
               rel=rel.reshape(-1).astype(jnp.int32), mask=mask.reshape(-1))


class EncoderLayer(nn.Module):
  """torch.nn.TransformerEncoderLayer defaults: post-LN, ReLU FFN, eps 1e-5, dropout everywhere."""

  heads: int
  ff_dim: int
  dropout: float

  @nn.compact
  def __call__(self, x, mask, *, train: bool):
    d = x.shape[-1]
    drop = lambda y: nn.Dropout(self.dropout, deterministic=not train)(y)
    a = nn.MultiHeadDotProductAttention(
        self.heads, qkv_features=d, out_features=d, dropout_rate=self.dropout,
        deterministic=not train, name="self_attn")(x, x, mask=mask[:, None, None, :])
    x = nn.LayerNorm(epsilon=1e-5, name="norm1")(x + drop(a))
    f = nn.Dense(d, name="linear2")(drop(nn.relu(nn.Dense(self.ff_dim, name="linear1")(x))))
    return nn.LayerNorm(epsilon=1e-5, name="norm2")(x + drop(f))


class ContextEncoder(nn.Module):
  """SeqContext (rnn="transformer"): encoder layers over the dialogue, then Linear to `hidden`."""

  hidden: int
  layers: int = 2
  heads: int | None = None  # None: COGMEN's rule, cogmen_heads(input dim)
  ff_dim: int = 2048  # torch's dim_feedforward default; COGMEN does not set it
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, mask, *, train: bool):
    heads = self.heads or cogmen_heads(x.shape[-1])
    if x.shape[-1] % heads:
      raise ValueError(f"ContextEncoder: input size {x.shape[-1]} is not divisible by "
                       f"{heads} heads")
    for i in range(self.layers):
      x = EncoderLayer(heads, self.ff_dim, self.dropout, name=f"layers_{i}")(x, mask, train=train)
    return nn.Dense(self.hidden, name="transformer_out")(x)


class COGMEN(nn.Module):
  """x [B, T, D], speakers [B, T] int, lengths [B] -> {'logits' [B, T, C], 'embedding', 'mask'}.

  `embedding` is the GNN output after BatchNorm + LeakyReLU ([B, T, hidden * gnn_heads]), the
  "graph embedding" the COGMEN-KD triplet loss uses. Padded slots hold don't-care values;
  `mask` [B, T] marks the valid utterances. Defaults are COGMEN's train.py defaults.
  """

  num_classes: int
  hidden: int = 100  # args.hidden_size: g_dim = h1 = h2 = hc
  window_past: int = 5
  window_future: int = 5
  n_speakers: int = 2
  context_layers: int = 2  # args.seqcontext_nlayer
  context_heads: int | None = None
  context_ff: int = 2048
  gnn_heads: int = 1  # args.gnn_nheads
  dropout: float = 0.5  # args.drop_rate: encoder layers and classifier
  concat_gin_gout: bool = False

  @nn.compact
  def __call__(self, x, speakers, lengths, *, train: bool = False):
    chex.assert_rank(x, 3)
    b, t, _ = x.shape
    chex.assert_shape(speakers, (b, t))
    chex.assert_shape(lengths, (b,))
    mask = jnp.arange(t)[None, :] < lengths[:, None]
    h = ContextEncoder(self.hidden, self.context_layers, self.context_heads, self.context_ff,
                       self.dropout, name="rnn")(x, mask, train=train)
    nodes = h.reshape(b * t, self.hidden)
    e = dialogue_edges(lengths, speakers, window_past=self.window_past,
                       window_future=self.window_future, n_speakers=self.n_speakers)
    # GNN: no nonlinearity between the two convolutions, as in COGMEN's GNN.forward.
    g = RGCNConv(self.hidden, num_relations(self.n_speakers), name="gcn_conv1")(
        nodes, e.src, e.tgt, e.rel, e.mask)
    g = TransformerConv(self.hidden, self.gnn_heads, name="gcn_conv2")(
        g, e.src, e.tgt, e.mask, train=train)
    g = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="gcn_bn")(
        g, mask=mask.reshape(b * t, 1))
    g = nn.leaky_relu(g, 0.01)
    feats = jnp.concatenate([nodes, g], -1) if self.concat_gin_gout else g
    z = nn.relu(nn.Dense(self.hidden, name="clf_lin1")(feats))
    z = nn.Dropout(self.dropout, deterministic=not train)(z)
    logits = nn.Dense(self.num_classes, name="clf_lin2")(z)
    return {"logits": logits.reshape(b, t, self.num_classes),
            "embedding": g.reshape(b, t, -1), "mask": mask}


class DialogueCOGMEN(COGMEN):
  """COGMEN as a stage model: `(x [B, T, D], length [B], *, speakers [B, T], train)`, the call
  the trainer makes for `dialogue` inputs (their `speakers` batch field comes as a keyword)."""

  def __call__(self, x, length, *, speakers, train: bool = False):
    return COGMEN.__call__(self, x, speakers, length, train=train)
