"""UA / WA / F1 against hand-computed values and scikit-learn."""

import numpy as np
from sklearn import metrics as skm

from jaxser import metrics


def test_hand_computed_confusion():
  labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
  preds = np.array([0, 0, 1, 2, 1, 0, 2, 2, 2, 2])
  m = metrics.classification_metrics(labels, preds, num_classes=4)
  assert m["confusion"] == [[2, 1, 1, 0], [1, 1, 0, 0], [0, 0, 4, 0], [0, 0, 0, 0]]
  assert np.isclose(m["wa"], 7 / 10)
  assert np.isclose(m["ua"], (2 / 4 + 1 / 2 + 4 / 4) / 3)  # class 3 is absent: left out
  assert m["count"] == 10


def test_agrees_with_sklearn_on_random_predictions():
  rng = np.random.default_rng(0)
  labels, preds = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
  m = metrics.classification_metrics(labels, preds, 5)
  assert np.isclose(m["ua"], skm.balanced_accuracy_score(labels, preds))
  assert np.isclose(m["wa"], skm.accuracy_score(labels, preds))
  assert np.isclose(m["macro_f1"], skm.f1_score(labels, preds, average="macro"))
  assert np.isclose(m["weighted_f1"], skm.f1_score(labels, preds, average="weighted"))
  assert np.isclose(m["macro_precision"], skm.precision_score(labels, preds, average="macro"))


def test_mean_std():
  assert np.allclose(metrics.mean_std([0.5, 0.7]), (0.6, 0.1))
