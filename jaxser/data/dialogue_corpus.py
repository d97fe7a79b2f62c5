"""Corpora that come as dialogues of per-utterance features, not audio: COGMEN's IEMOCAP feature
pickle (`corpus.name="cogmen_pickle"`) and the synthetic dialogues (`"synthetic_dialogues"`).

Each becomes an ordinary `Corpus`: one `Utterance` per utterance (its dialogue and turn, the
split in `session` for the `predefined_split` protocol, the speaker of the dialogue as
`<dialogue>_M` / `<dialogue>_F` with gender m / f, COGMEN's speaker ids 0 / 1), and the
features in `Corpus.vectors`, which the `dialogue` input kind reads.
"""

from __future__ import annotations

import dataclasses

from jaxser.data.corpus import Corpus, Utterance
from jaxser.data.dialogues import Dialogue
from jaxser.errors import UserError

GENDERS = "mf"  # speaker id 0 / 1 of a Dialogue (COGMEN's SPEAKER_TO_IDX: M 0, F 1)


def from_dialogues(name: str, class_names, splits: dict[str, list[Dialogue]]) -> Corpus:
  """A Corpus of every utterance of `splits` ({split: dialogues}), features in `vectors`."""
  utts, vectors = [], {}
  for split, dialogues in splits.items():
    for d in dialogues:
      ids = d.utterance_ids or tuple(f"{d.id}_u{j:03d}" for j in range(len(d)))
      for j, uid in enumerate(ids):
        g = GENDERS[int(d.speakers[j])]
        utts.append(Utterance(id=uid, speaker=f"{d.id}_{g.upper()}", label=int(d.labels[j]),
                              session=split, dialogue=d.id, turn=j, gender=g,
                              transcript=d.sentences[j] if d.sentences else ""))
        for modality, feats in d.features.items():
          vectors.setdefault(modality, {})[uid] = feats[j]
  return Corpus(name=name, class_names=tuple(class_names), sample_rate=0, utterances=utts,
                vectors=vectors)


SYNTHETIC_KEYS = ("name", "seed", "n_dialogues", "test_fraction", "dev_fraction")


def synthetic(cfg) -> Corpus:
  """`synthetic_dialogues.make_synthetic_dialogues` from the corpus config: seed, n_dialogues,
  test_fraction, dev_fraction and any `DialogueSpec` field (audio_dim, visual_noise, ...)."""
  from jaxser.data import synthetic_dialogues as sd
  fields = {f.name for f in dataclasses.fields(sd.DialogueSpec)}
  unknown = sorted(set(cfg.keys()) - fields - set(SYNTHETIC_KEYS))
  if unknown:
    raise UserError(f"config.corpus has keys {unknown} that synthetic_dialogues does not take; "
                    f"it takes {sorted(SYNTHETIC_KEYS[1:])} and DialogueSpec's {sorted(fields)}")
  spec = sd.DialogueSpec(**{k: cfg[k] for k in cfg.keys() if k in fields})
  splits = sd.make_synthetic_dialogues(
      int(cfg.get("n_dialogues", 120)), int(cfg.get("seed", 0)), spec,
      test_fraction=float(cfg.get("test_fraction", 0.2)),
      dev_fraction=float(cfg.get("dev_fraction", 0.1)))
  return from_dialogues("synthetic_dialogues", sd.CLASS_NAMES[:spec.num_classes], splits)


def cogmen_pickle(cfg) -> Corpus:
  """COGMEN's feature pickle at `cfg.path` (`dataset` "iemocap_4" or "iemocap" names the
  class list; `dev_fraction` as in COGMEN's get_iemocap)."""
  from jaxser.data.cogmen_pickle import CLASS_NAMES, load_cogmen_pickle
  if not cfg.get("path"):
    raise UserError("config.corpus.path is not set; point it at COGMEN's "
                    "IEMOCAP_features_4.pkl (or IEMOCAP_features.pkl with dataset='iemocap')")
  dataset = cfg.get("dataset", "iemocap_4")
  if dataset not in CLASS_NAMES:
    raise UserError(f"config.corpus.dataset={dataset!r}: choose one of {sorted(CLASS_NAMES)}")
  splits = load_cogmen_pickle(str(cfg.path), dev_fraction=float(cfg.get("dev_fraction", 0.1)))
  return from_dialogues("cogmen_pickle", CLASS_NAMES[dataset], splits)


def class_names(cfg) -> tuple[str, ...]:
  if cfg["name"] == "cogmen_pickle":
    from jaxser.data.cogmen_pickle import CLASS_NAMES
    return tuple(CLASS_NAMES[cfg.get("dataset", "iemocap_4")])
  from jaxser.data import synthetic_dialogues as sd
  return tuple(sd.CLASS_NAMES[:int(cfg.get("num_classes", 4))])


BUILDERS = {"synthetic_dialogues": synthetic, "cogmen_pickle": cogmen_pickle}
