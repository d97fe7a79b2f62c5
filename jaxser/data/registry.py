"""`load_corpus(config.corpus)`: the one entry from a corpus config to a Corpus.

Real corpora (`name` in iemocap / cremad / emodb) read the user's copy at
`manual_dir`. Keys of the corpus config:
  manual_dir   the release folder (layouts in each scanner's docstring); required
  sample_rate  audio is resampled to it (default 16000)
  use_tfds     False (default): scan the folder, audio read lazily per utterance;
               True: prepare a TFDS dataset once (under `data_dir`, default
               ~/tensorflow_datasets) and load every waveform from it into memory
  data_dir, audio_dtype ("float32" default / "int16"): TFDS storage, used with use_tfds
  anything else: options of the corpus scanner (IEMOCAP `classes`, `subset`;
               CREMA-D `intensities`); unknown keys are an error.
"""

from __future__ import annotations

import importlib
import inspect

from jaxser.data.corpus import Corpus

SCANNERS = {"iemocap": "jaxser.data.iemocap", "cremad": "jaxser.data.cremad",
            "emodb": "jaxser.data.emodb"}
_RESERVED = ("name", "manual_dir", "sample_rate", "use_tfds", "data_dir", "audio_dtype")


def scanner_options(name: str) -> list[str]:
  """Option names the scanner of corpus `name` accepts besides manual_dir and sample_rate."""
  params = inspect.signature(importlib.import_module(SCANNERS[name]).scan).parameters
  return [p for p in params if p not in ("manual_dir", "sample_rate")]


def load_corpus(cfg) -> Corpus:
  """Builds the corpus named by `cfg.name` (an ml_collections ConfigDict or dict)."""
  name = cfg["name"]
  if name == "synthetic":
    from jaxser.data import synthetic
    return synthetic.build(cfg)
  if name not in SCANNERS:
    raise ValueError(f"config.corpus.name={name!r} is unknown; "
                     f"choose one of {['synthetic'] + sorted(SCANNERS)}")
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
    return tfds_builders.load(name, str(manual_dir), data_dir=cfg.get("data_dir"),
                              sample_rate=sample_rate,
                              audio_dtype=cfg.get("audio_dtype", "float32"), **options)
  return module.scan(str(manual_dir), sample_rate=sample_rate, **options)
