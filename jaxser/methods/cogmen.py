"""COGMEN distillation and masked modality training (Muaz et al.), on `dialogue` inputs.

Every stage is a COGMEN (`models/cogmen.py`) classifying every utterance of a dialogue. Rows of
the paper (IEMOCAP, weighted F1) and the stages of `configs/cogmen_*.py`:
  COGMEN-A 0.636                      `cogmen_a`: loss `ce`, modalities "a"
  COGMEN-AV 0.61, in A-only inference 0.426
                                      `cogmen_av`: `ce`, "av"; `test_inputs.a_only` zeroes
                                      the video columns at test (the paper's A-only inference)
  COGMEN-Mask 0.687 (AV) / 0.662 (A)  `cogmen_mask`: `ce`, "av", `modality_mask` (masked
                                      training, stage_features/modality_mask.py), tested on
                                      AV and with video zeroed
  teacher AV 0.61 -> student A 0.60   `student_kd`: `triplet_kd` from `cogmen_av`'s cached
                                      graph embeddings (the teacher is the COGMEN-AV stage)

Where the paper is silent, choices (and where the reference code, m-muaz/Cogmen_SLT branch
cogmen_contrastive custom/{model,speech_cogmen}.py, settles it):
- The triplet acts on the graph embeddings (GNN output after BatchNorm + LeakyReLU, COGMEN's
  `graph_out`) of every valid utterance of the batch: anchor = the student's, positive = the
  teacher's embedding of the same utterance, negatives = for every *other* class present in the
  batch, the teacher embedding of one utterance of that class drawn uniformly among the batch's
  (the reference's generate_contrastive_data). The loss per anchor is
  relu(N·d(a, p) − Σ d(a, n) + margin), N the number of negatives, d the L2 distance
  (`losses.triplet_cogmen`); summed over the batch's utterances as the reference does
  (`reduction`; CE is a mean over utterances, as COGMEN's NLLLoss), weights 1 and 1, margin 1.
- The draw of negatives needs randomness that a loss function is not given: it comes from a
  key of the batch's teacher embeddings (bits summed), so it is fixed by the batch, and a
  batch, hence its draw, is fixed by (seed, epoch) like every other batch order.
- The teacher's embeddings are its best checkpoint's, computed on clean AV inputs once per fold
  (the teacher cache), as the reference extracts them from the frozen teacher.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxser import losses


def _flat(out, batch):
  """(logits [M, C], labels [M], valid [M]) over every slot of the batch's dialogues."""
  logits = out["logits"]
  labels = batch["label"]
  valid = (labels >= 0) & (batch["mask"][:, None] > 0)
  return (logits.reshape(-1, logits.shape[-1]), jnp.maximum(labels, 0).reshape(-1),
          valid.reshape(-1).astype(jnp.float32))


def ce(student_out, teacher_out, batch, cfg):
  """Cross-entropy, mean over the batch's utterances (padding slots left out)."""
  del teacher_out
  logits, labels, valid = _flat(student_out, batch)
  loss = losses.cross_entropy(logits, labels, mask=valid,
                              label_smoothing=cfg.get("label_smoothing", 0.0))
  return loss, {"ce": loss}


def draw_negatives(key, teacher_emb, labels, valid, num_classes: int):
  """(negatives [M, C, H], negative_mask [M, C]): for every anchor and every class present
  among the valid utterances other than its own, one teacher embedding of that class drawn
  uniformly from the batch."""
  onehot = jax.nn.one_hot(labels, num_classes) * valid[:, None]  # [M, C]
  scores = jax.random.uniform(key, (labels.shape[0], labels.shape[0]))  # anchor x candidate
  picked = jnp.argmax(jnp.where(onehot.T[None] > 0, scores[:, None, :], -1.0), axis=-1)  # [M, C]
  present = onehot.sum(0) > 0
  mask = present[None, :] & (jnp.arange(num_classes)[None, :] != labels[:, None])
  return teacher_emb[picked], mask


def triplet_kd(student_out, teacher_out, batch, cfg):
  """ce_weight·CE + triplet_weight·N-way triplet on graph embeddings (see the module docstring).

  loss_cfg: teacher (stage), margin 1, p 2, ce_weight 1, triplet_weight 1, reduction "sum".
  """
  logits, labels, valid = _flat(student_out, batch)
  ce_loss = losses.cross_entropy(logits, labels, mask=valid)
  h = student_out["embedding"].reshape(labels.shape[0], -1)
  t = teacher_out[cfg.teacher]["embedding"].reshape(labels.shape[0], -1)
  t = jax.lax.stop_gradient(t)
  key = jax.random.PRNGKey(jnp.sum(jax.lax.bitcast_convert_type(t, jnp.int32) & 0xFFFF))
  negatives, neg_mask = draw_negatives(key, t, labels, valid, logits.shape[-1])
  trip = losses.triplet_cogmen(h, t, negatives, margin=cfg.get("margin", 1.0),
                               p=cfg.get("p", 2.0), mask=valid, negative_mask=neg_mask,
                               reduction=cfg.get("reduction", "sum"))
  loss = cfg.get("ce_weight", 1.0) * ce_loss + cfg.get("triplet_weight", 1.0) * trip
  return loss, {"ce": ce_loss, "triplet": trip}


def config_stages(full: str = "av", model: dict | None = None, mask: dict | None = None,
                  input_extra: dict | None = None):
  """The four stages of the paper's rows (COGMEN-A, COGMEN-<full>, COGMEN-Mask and the triplet
  KD student A from COGMEN-<full>), as the configs use them; `full` is the teacher's streams
  ("av"; "at" where a corpus has no video), the second of them the one masked and zeroed."""
  import ml_collections
  from jaxser.config_utils import stage_train
  model = dict(name="cogmen", **(model or {}))
  extra = dict(input_extra or {})
  second = full[1]
  one = lambda modalities: dict(kind="dialogue", modalities=modalities, **extra)
  a_only = {"a_only": dict(zero=second)}
  stages = ml_collections.ConfigDict()
  stages.cogmen_a = dict(model=model, input=one("a"), loss="ce", loss_cfg={}, teachers=(),
                         train=stage_train())
  stages[f"cogmen_{full}"] = dict(model=model, input=one(full), loss="ce", loss_cfg={},
                                  teachers=(), test_inputs=a_only, train=stage_train())
  stages.cogmen_mask = dict(model=model, input=one(full), loss="ce", loss_cfg={}, teachers=(),
                            modality_mask=dict(mask or {}, streams=full), test_inputs=a_only,
                            train=stage_train())
  stages.student_kd = dict(model=model, input=one("a"), loss="triplet_kd",
                           loss_cfg=dict(teacher=f"cogmen_{full}", margin=1.0, p=2.0,
                                         ce_weight=1.0, triplet_weight=1.0, reduction="sum"),
                           teachers=(f"cogmen_{full}",), train=stage_train())
  return stages


def config_train(learning_rate: float, epochs: int, batch_size: int) -> dict:
  """`config.train` of the COGMEN configs: Adam, constant rate, best epoch by validation
  weighted F1 (COGMEN keeps the best dev F1 model), no plateau or early stopping."""
  return dict(optimizer="adam", learning_rate=learning_rate, weight_decay=0.0,
              schedule="constant", warmup_epochs=0, grad_clip_norm=0.0, grad_accum_steps=1,
              epochs=epochs, batch_size=batch_size, eval_batch_size=batch_size,
              select="weighted_f1", plateau=dict(patience=0, factor=0.5, monitor="loss"),
              early_stopping=dict(patience=0, monitor="ua"))
