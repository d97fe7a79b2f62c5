"""COGMEN graph parts: edge rule vs hand-written lists, RGCNConv / TransformerConv vs PyG."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.models.cogmen import dialogue_edges, num_relations, window_pairs
from jaxser.models.graph import RGCNConv, TransformerConv


def pyg():
  """(torch, torch_geometric.nn); parity tests skip without them, the edge-rule tests do not."""
  return pytest.importorskip("torch"), pytest.importorskip("torch_geometric.nn")


def rule_edges(lengths, speakers, wp, wf, n_speakers):
  """COGMEN's batch_graphify rule, restated: compact node ids, sorted (src, tgt, rel) triples."""
  out, start = [], 0
  for b, n in enumerate(lengths):
    for j in range(n):
      lo = 0 if wp == -1 else max(0, j - wp)
      hi = n if wf == -1 else min(n, j + wf + 1)
      for k in range(lo, hi):
        key = f"{speakers[b][j]}{speakers[b][k]}{0 if j < k else 1}"
        out.append((start + j, start + k, relation_table(n_speakers)[key]))
    start += n
  return sorted(out)


def relation_table(n):
  """edge_type_to_idx as COGMEN.__init__ fills it: speaker j, speaker k, then direction."""
  table = {}
  for j, k, c in itertools.product(range(n), range(n), "01"):
    table[f"{j}{k}{c}"] = len(table)
  return table


def ours(lengths, speakers, wp, wf, n_speakers):
  """Our static edges, kept where unmasked, with slot ids b*T+t mapped to compact ids."""
  lengths = np.asarray(lengths)
  spk = np.zeros((len(lengths), max(int(lengths.max()), 1)), np.int32)
  for b, s in enumerate(speakers):
    spk[b, :len(s)] = s
  e = dialogue_edges(jnp.asarray(lengths), jnp.asarray(spk), window_past=wp, window_future=wf,
                     n_speakers=n_speakers)
  t = spk.shape[1]
  start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  compact = lambda i: int(start[i // t] + i % t)
  m = np.asarray(e.mask)
  return sorted((compact(s), compact(d), int(r)) for s, d, r in
                zip(np.asarray(e.src)[m], np.asarray(e.tgt)[m], np.asarray(e.rel)[m]))


def test_relation_ids():
  assert num_relations(2) == 8
  for n in (1, 2, 3):
    for (j, k, c), idx in ((tuple(map(int, key)), v) for key, v in relation_table(n).items()):
      assert idx == (j * n + k) * 2 + c


def test_alternating_dialogue_shorter_than_window():
  # M F M, window 5/5 > length: every ordered pair; self-loops count as direction 1.
  want = [(0, 0, 1), (0, 1, 2), (0, 2, 0), (1, 0, 5), (1, 1, 7), (1, 2, 4),
          (2, 0, 1), (2, 1, 3), (2, 2, 1)]
  assert ours([3], [[0, 1, 0]], 5, 5, 2) == want


def test_non_alternating_asymmetric_window():
  # Node j sends to k in [j - 1, j + 2]: the window is around the *source*.
  want = [(0, 0, 1), (0, 1, 0), (0, 2, 2), (1, 0, 1), (1, 1, 1), (1, 2, 2), (1, 3, 2),
          (2, 1, 5), (2, 2, 7), (2, 3, 6), (2, 4, 4), (3, 2, 7), (3, 3, 7), (3, 4, 4),
          (4, 3, 3), (4, 4, 1)]
  assert ours([5], [[0, 0, 1, 1, 0]], 1, 2, 2) == want
  assert rule_edges([5], [[0, 0, 1, 1, 0]], 1, 2, 2) == want


def test_batch_of_two_lengths():
  a, b = [0, 1, 0], [0, 0, 1, 1, 0]
  want = ([(s, d, r) for s, d, r in ours([3], [a], 5, 5, 2)]
          + [(s + 3, d + 3, r) for s, d, r in ours([5], [b], 5, 5, 2)])
  assert ours([3, 5], [a, b], 5, 5, 2) == sorted(want)
  assert ours([5, 3], [b, a], 5, 5, 2) == rule_edges([5, 3], [b, a], 5, 5, 2)


@pytest.mark.parametrize("wp,wf,n_speakers", [(5, 5, 2), (2, 0, 2), (0, 3, 3), (-1, 1, 2),
                                               (2, -1, 2), (-1, -1, 2)])
def test_random_batches_follow_rule(wp, wf, n_speakers):
  rng = np.random.default_rng([wp + 1, wf + 1, n_speakers])
  for _ in range(5):
    lengths = rng.integers(1, 14, size=rng.integers(1, 4))
    speakers = [list(rng.integers(0, n_speakers, n)) for n in lengths]
    assert ours(lengths, speakers, wp, wf, n_speakers) == rule_edges(
        lengths, speakers, wp, wf, n_speakers)


def test_window_pairs_clip_to_length():
  src, tgt = window_pairs(1, 5, 5)
  assert src.tolist() == [0] and tgt.tolist() == [0]


def random_graph(rng, n, e, junk, r=None):
  """e real edges (duplicates and self-loops allowed) + `junk` masked edges after them."""
  src, tgt = rng.integers(0, n, e + junk), rng.integers(0, n, e + junk)
  rel = rng.integers(0, r, e + junk) if r else None
  mask = np.arange(e + junk) < e
  return src, tgt, rel, mask


def test_rgcn_matches_pyg():
  torch, pyg_nn = pyg()
  rng = np.random.default_rng(0)
  n, d_in, d_out, r = 13, 6, 5, 8
  src, tgt, rel, mask = random_graph(rng, n, 40, 9, r)
  x = rng.normal(size=(n, d_in)).astype(np.float32)
  conv = RGCNConv(d_out, r)
  params = conv.init(jax.random.PRNGKey(0), x, src, tgt, rel, mask)
  params = jax.tree_util.tree_map(  # non-zero bias so it is checked too
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
  got = np.asarray(jax.jit(conv.apply)(params, x, src, tgt, rel, mask))
  ref = pyg_nn.RGCNConv(d_in, d_out, r)
  p = params["params"]
  with torch.no_grad():
    for name in ("weight", "root", "bias"):
      getattr(ref, name).copy_(torch.from_numpy(np.array(p[name])))
    want = ref(torch.from_numpy(x), torch.from_numpy(np.stack([src[mask], tgt[mask]])),
               torch.from_numpy(rel[mask])).numpy()
  print("RGCNConv max |diff|", np.abs(got - want).max())
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("heads", [1, 3])
def test_transformer_conv_matches_pyg(heads):
  torch, pyg_nn = pyg()
  rng = np.random.default_rng(heads)
  n, d_in, c = 11, 6, 4
  src, tgt, _, mask = random_graph(rng, n, 30, 7)
  tgt[mask & (tgt == n - 1)] = 0  # node n-1 receives no real edge: output is the skip alone
  x = rng.normal(size=(n, d_in)).astype(np.float32)
  conv = TransformerConv(c, heads)
  params = conv.init(jax.random.PRNGKey(0), x, src, tgt, mask)
  params = jax.tree_util.tree_map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params)
  got = np.asarray(jax.jit(conv.apply)(params, x, src, tgt, mask))
  ref = pyg_nn.TransformerConv(d_in, c, heads=heads, concat=True)
  with torch.no_grad():
    for name in ("lin_query", "lin_key", "lin_value", "lin_skip"):
      dense = params["params"][name]
      getattr(ref, name).weight.copy_(torch.from_numpy(np.asarray(dense["kernel"]).T.copy()))
      getattr(ref, name).bias.copy_(torch.from_numpy(np.array(dense["bias"])))
    want = ref(torch.from_numpy(x), torch.from_numpy(np.stack([src[mask], tgt[mask]]))).numpy()
  print(f"TransformerConv(heads={heads}) max |diff|", np.abs(got - want).max())
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_rgcn_on_padded_batch_matches_pyg_on_compact_graph():
  """Our masked slot graph + RGCNConv == PyG on COGMEN's compact graph (padding dropped)."""
  torch, pyg_nn = pyg()
  rng = np.random.default_rng(3)
  lengths, t, d = np.array([4, 9, 1]), 9, 5
  spk = rng.integers(0, 2, (3, t)).astype(np.int32)
  x = rng.normal(size=(3, t, d)).astype(np.float32)
  e = dialogue_edges(jnp.asarray(lengths), jnp.asarray(spk))
  conv = RGCNConv(d, 8)
  flat = x.reshape(3 * t, d)
  params = conv.init(jax.random.PRNGKey(0), flat, e.src, e.tgt, e.rel, e.mask)
  got = np.asarray(conv.apply(params, flat, e.src, e.tgt, e.rel, e.mask)).reshape(3, t, d)
  got = np.concatenate([got[b, :n] for b, n in enumerate(lengths)])
  triples = np.array(rule_edges(lengths, [s[:n] for s, n in zip(spk, lengths)], 5, 5, 2))
  ref = pyg_nn.RGCNConv(d, d, 8)
  with torch.no_grad():
    for name in ("weight", "root", "bias"):
      getattr(ref, name).copy_(torch.from_numpy(np.array(params["params"][name])))
    compact_x = np.concatenate([x[b, :n] for b, n in enumerate(lengths)])
    want = ref(torch.from_numpy(compact_x), torch.from_numpy(triples[:, :2].T.copy()),
               torch.from_numpy(triples[:, 2].copy())).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
