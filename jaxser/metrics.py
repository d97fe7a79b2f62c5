"""Classification metrics of speech emotion recognition: UA, WA, F1, confusion matrix."""

from __future__ import annotations

import numpy as np

# The scores `from_confusion` returns, in report column order.
NAMES = ("ua", "wa", "macro_precision", "macro_f1", "weighted_f1")


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts [true, predicted] for integer `labels` and `preds`."""
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels), np.asarray(preds)), 1)
  return cm


def from_confusion(cm: np.ndarray) -> dict[str, float]:
  """UA (mean recall over classes present), WA (accuracy), macro and weighted F1.

  Classes absent from the test set are left out of UA and macro-F1, as in the
  usual per-fold SER evaluation, rather than counted as zero recall.
  """
  cm = np.asarray(cm, np.float64)
  support = cm.sum(1)
  predicted = cm.sum(0)
  tp = np.diag(cm)
  present = support > 0
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
  total = support.sum()
  return {
      "ua": float(recall[present].mean()) if present.any() else 0.0,
      "wa": float(tp.sum() / total) if total else 0.0,
      "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
      "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
      "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
  }


def recalls(cm: np.ndarray) -> list[float]:
  """Recall of every class (row) of a confusion matrix; 0 for a class with no example."""
  cm = np.asarray(cm, np.float64)
  support = cm.sum(1)
  return np.divide(np.diag(cm), support, out=np.zeros(len(cm)), where=support > 0).tolist()


def classification_metrics(labels, preds, num_classes: int) -> dict:
  """All metrics plus the confusion matrix (as nested lists, JSON-ready)."""
  cm = confusion_matrix(labels, preds, num_classes)
  out = from_confusion(cm)
  out["confusion"] = cm.tolist()
  out["count"] = int(cm.sum())
  return out


def mean_std(values) -> tuple[float, float]:
  """Mean and population std over folds."""
  arr = np.asarray(list(values), np.float64)
  return float(arr.mean()), float(arr.std())
