"""Synthetic dialogues: deterministic, right shapes, and the designed informativeness ordering."""

from __future__ import annotations

import numpy as np

from jaxser.data.dialogues import pad_dialogues
from jaxser.data.synthetic_dialogues import DialogueSpec, make_synthetic_dialogues

SMALL = DialogueSpec(audio_dim=24, text_dim=16, visual_dim=20, min_len=3, max_len=9)


def test_deterministic_and_shaped():
  a = make_synthetic_dialogues(20, seed=3, spec=SMALL)
  b = make_synthetic_dialogues(20, seed=3, spec=SMALL)
  longer = make_synthetic_dialogues(30, seed=3, spec=SMALL)
  assert [len(a[s]) for s in ("train", "dev", "test")] == [14, 2, 4]
  flat = [d for s in ("train", "dev", "test") for d in a[s]]
  for d, e, f in zip(flat, [d for s in ("train", "dev", "test") for d in b[s]],
                     [d for s in ("train", "dev", "test") for d in longer[s]]):
    assert d.id == e.id and (d.labels == e.labels).all() and (d.speakers == e.speakers).all()
    for m in d.features:
      np.testing.assert_array_equal(d.features[m], e.features[m])
    if d.id == f.id:  # a dialogue does not depend on how many are generated
      np.testing.assert_array_equal(d.features["audio"], f.features["audio"])
  assert flat[0].features["audio"].dtype == np.float32
  for d in flat:
    t = len(d)
    assert SMALL.min_len <= t <= SMALL.max_len
    assert {m: x.shape for m, x in d.features.items()} == {
        "audio": (t, 24), "text": (t, 16), "visual": (t, 20)}
    assert set(np.unique(d.speakers)) <= {0, 1} and d.labels.max() < SMALL.num_classes
  other = make_synthetic_dialogues(20, seed=4, spec=SMALL)
  assert not np.array_equal(other["train"][0].features["audio"][:3],
                            a["train"][0].features["audio"][:3])
  batch = pad_dialogues(a["test"], "av")
  assert batch["x"].shape == (4, max(len(d) for d in a["test"]), 44)


def _lstsq_accuracy(data, feats):
  """Ridge least-squares one-vs-all on train, accuracy on test: cheap linear probe."""
  xs = {s: np.concatenate([feats(d) for d in data[s]]) for s in ("train", "test")}
  ys = {s: np.concatenate([d.labels for d in data[s]]) for s in ("train", "test")}
  x = np.c_[xs["train"], np.ones(len(xs["train"]))]
  w = np.linalg.solve(x.T @ x + 1.0 * np.eye(x.shape[1]), x.T @ np.eye(4)[ys["train"]])
  return (np.argmax(np.c_[xs["test"], np.ones(len(xs["test"]))] @ w, 1) == ys["test"]).mean()


def _with_context(x, w=2):
  ctx = [x[max(0, j - w):j + w + 1].mean(0) for j in range(len(x))]
  return np.concatenate([x, np.stack(ctx)], 1)


def test_audio_informative_visual_and_context_help():
  data = make_synthetic_dialogues(200, seed=0, spec=DialogueSpec(
      audio_dim=24, text_dim=16, visual_dim=20))
  acc_a = _lstsq_accuracy(data, lambda d: d.features["audio"])
  acc_av = _lstsq_accuracy(data, lambda d: np.c_[d.features["audio"], d.features["visual"]])
  acc_ctx = _lstsq_accuracy(data, lambda d: _with_context(d.features["audio"]))
  labels = np.concatenate([d.labels for d in data["test"]])
  majority = np.bincount(labels).max() / len(labels)
  print(f"majority {majority:.3f} audio {acc_a:.3f} audio+visual {acc_av:.3f} "
        f"audio+context {acc_ctx:.3f}")
  assert acc_a > majority + 0.15
  assert acc_av > acc_a + 0.03 and acc_ctx > acc_a + 0.03
