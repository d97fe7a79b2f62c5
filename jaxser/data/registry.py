"""`load_corpus(config.corpus)`: the one entry from a corpus config to a Corpus.

`synthetic_dialogues` and `cogmen_pickle` (`path`) are dialogues of features
(data/dialogue_corpus.py). Real corpora (`name` in iemocap / cremad / emodb) read the user's copy at
`manual_dir`. Keys of the corpus config:
  manual_dir   the release folder (layouts in each scanner's docstring); required
  sample_rate  audio is resampled to it (default 16000)
  use_tfds     False (default): scan the folder, audio read lazily per utterance;
               True: prepare a TFDS dataset once (under `data_dir`, default
               ~/tensorflow_datasets) and load every waveform from it into memory
  data_dir, audio_dtype ("float32" default / "int16"): TFDS storage, used with use_tfds
  anything else: options of the corpus scanner (IEMOCAP `classes`, `subset`;
               CREMA-D `intensities`); unknown keys are an error.

Audio files that cannot be used (empty, unreadable, cut short, NaN samples, silent, ...:
`features.audio.REASONS`) stop the load with one error naming them, unless the caller
passes `skip_bad_files=True` (`python -m jaxser.train --skip_bad_files`): then each is
named on stderr, left out, and counted in `Corpus.skipped` (the report lists them). A bad
file is never trained on, and never left out without being asked for.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys

from jaxser.data import dialogue_corpus
from jaxser.data.corpus import Corpus
from jaxser.errors import UserError

SCANNERS = {"iemocap": "jaxser.data.iemocap", "cremad": "jaxser.data.cremad",
            "emodb": "jaxser.data.emodb"}
_RESERVED = ("name", "manual_dir", "sample_rate", "use_tfds", "data_dir", "audio_dtype")
SKIP_FLAG = "--skip_bad_files"  # jaxser.train's flag that sets `skip_bad_files`
_LISTED = 10  # bad files named in the error line; the rest are counted


def scanner_options(name: str) -> list[str]:
  """Option names the scanner of corpus `name` accepts besides manual_dir and sample_rate."""
  params = inspect.signature(importlib.import_module(SCANNERS[name]).scan).parameters
  return [p for p in params if p not in ("manual_dir", "sample_rate")]


def class_names(cfg) -> tuple[str, ...]:
  """Class list of the corpus `cfg` configures (labels index it), without reading any audio."""
  name = cfg["name"]
  if name == "synthetic":
    from jaxser.data import synthetic
    return tuple(synthetic.CLASS_NAMES)
  if name in dialogue_corpus.BUILDERS:
    return dialogue_corpus.class_names(cfg)
  if name not in SCANNERS:
    raise ValueError(f"config.corpus.name={name!r} is unknown; "
                     f"choose one of {['synthetic'] + sorted(dialogue_corpus.BUILDERS) + sorted(SCANNERS)}")
  module = importlib.import_module(SCANNERS[name])
  if hasattr(module, "CLASS_LISTS"):  # a corpus with selectable class lists (IEMOCAP)
    default = inspect.signature(module.scan).parameters["classes"].default
    return tuple(module.CLASS_LISTS[cfg.get("classes", default)])
  return tuple(module.CLASS_NAMES)


def bad_files_rule(corpus: Corpus, skip: bool, manual_dir: str) -> None:
  """Stops on the corpus's unusable audio files, naming them and the flag that skips them;
  with `skip`, names each on stderr (they stay out of the corpus, counted in `skipped`)."""
  from jaxser.features import audio  # local import: features depend on librosa
  total = sum(n for reason, n in corpus.skipped.items() if reason in audio.REASONS)
  if not total:
    return
  named = [f"{os.path.relpath(p, manual_dir)} ({r})" for p, r in sorted(corpus.bad_files.items())]
  unnamed = total - len(named)  # a TFDS dataset prepared before names were kept counts them only
  if not skip:
    shown = named[:_LISTED]
    more = total - len(shown)
    raise UserError(
        f"corpus {corpus.name!r}: {total} audio file(s) under {manual_dir} cannot be used: "
        f"{', '.join(shown)}{f' and {more} more' if more else ''}; fix or delete them, or pass "
        f"{SKIP_FLAG} to train without them")
  for line in named:
    print(f"{corpus.name}: leaving out {line} ({SKIP_FLAG})", file=sys.stderr)
  if unnamed:
    print(f"{corpus.name}: leaving out {unnamed} more unusable file(s), counted when the "
          "TFDS dataset was prepared", file=sys.stderr)


def load_corpus(cfg, skip_bad_files: bool = False) -> Corpus:
  """Builds the corpus named by `cfg.name` (an ml_collections ConfigDict or dict); stops on
  unusable audio files unless `skip_bad_files` (see the module docstring)."""
  name = cfg["name"]
  if name == "synthetic":
    from jaxser.data import synthetic
    return synthetic.build(cfg)
  if name in dialogue_corpus.BUILDERS:  # dialogues of features, no audio
    return dialogue_corpus.BUILDERS[name](cfg)
  if name not in SCANNERS:
    raise ValueError(f"config.corpus.name={name!r} is unknown; "
                     f"choose one of {['synthetic'] + sorted(dialogue_corpus.BUILDERS) + sorted(SCANNERS)}")
  module = importlib.import_module(SCANNERS[name])
  manual_dir = cfg.get("manual_dir")
  if not manual_dir:
    raise ValueError(f"config.corpus.manual_dir is not set; point it at your copy of {name}, "
                     f"laid out as {module.LAYOUT}")
  allowed = scanner_options(name)
  options = {k: cfg[k] for k in cfg.keys() if k not in _RESERVED}
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"config.corpus has keys {unknown} that corpus {name!r} does not take; "
                     f"its options are {allowed} besides {list(_RESERVED)}")
  options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
  sample_rate = int(cfg.get("sample_rate", 16000))
  if cfg.get("use_tfds", False):
    from jaxser.data import tfds_builders  # local import: TFDS is slow to import
    corpus = tfds_builders.load(name, str(manual_dir), data_dir=cfg.get("data_dir"),
                                sample_rate=sample_rate,
                                audio_dtype=cfg.get("audio_dtype", "float32"), **options)
  else:
    corpus = module.scan(str(manual_dir), sample_rate=sample_rate, **options)
  bad_files_rule(corpus, skip_bad_files, os.path.expanduser(str(manual_dir)))
  return corpus
