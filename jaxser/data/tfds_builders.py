"""TFDS builders for IEMOCAP, CREMA-D and EmoDB, reading the user's local copy (manual_dir).

Nothing is downloaded: each builder parses the release with the corpus scanner
(`jaxser.data.{iemocap,cremad,emodb}.scan`) and writes one `train` split holding every kept
utterance (folds are made later, from the utterance records). Audio is stored at the
config's sample rate as raw float32 bytes (default: exactly what a direct scan reads) or,
with `audio_dtype="int16"`, as 16-bit samples at half the size; resampling can overshoot
full scale, and int16 then clips those samples (one warning gives the count).

The scanner's skipped counts and unusable files are stored in the dataset metadata
(`builder.info.metadata["skipped"]` and `["bad_files"]`, in metadata.json next to the
prepared files), so a corpus loaded from a prepared dataset still reports what was left
out, and `registry.load_corpus` still stops on its bad files unless told to skip them.

Registered configs (16 kHz, float32): IEMOCAP `{4class,6class}_{all,improvised,scripted}`,
CREMA-D `all`, EmoDB `all`. `config_for` makes any other combination, named with its
sample rate and dtype (e.g. `4class_all_22050hz_float32`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxser.data import cremad, emodb, iemocap
from jaxser.data.corpus import Corpus, Utterance
from jaxser.features import audio

log = logging.getLogger(__name__)

AUDIO_DTYPES = {"int16": np.int16, "float32": np.float32}
_INT16_SCALE = 32768.0


@dataclasses.dataclass(eq=False)
class CorpusConfig(tfds.core.BuilderConfig):
  """Sample rate, stored audio dtype and scanner options (a sorted tuple of (key, value))."""

  sample_rate: int = 16000
  audio_dtype: str = "float32"
  options: tuple = ()


def _to_stored(w: np.ndarray, dtype: str) -> tuple[np.ndarray, int]:
  """The stored array and how many samples int16 had to clip."""
  if dtype == "float32":
    return w.astype(np.float32), 0
  scaled = np.round(w.astype(np.float64) * _INT16_SCALE)
  clipped = int(np.sum((scaled > 32767) | (scaled < -32768)))
  return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def _from_stored(a: np.ndarray) -> np.ndarray:
  if a.dtype == np.int16:
    return (a.astype(np.float32) / _INT16_SCALE).astype(np.float32)
  return a.astype(np.float32)


class _ManualCorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared body: scan `manual_dir`, write every kept utterance with its audio."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  SCANNER = None  # module with CLASS_NAMES / scan()
  DESCRIPTION = ""

  # TFDS 4.9.10's own code_path reaches for the `importlib_resources` backport, which it only
  # installs on Python < 3.9; this file's path is all it needs (to look for a checksums file).
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return epath.Path(__file__)

  def _class_names(self) -> tuple[str, ...]:
    return self.SCANNER.CLASS_NAMES

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "speaker": tfds.features.Text(),
            "session": tfds.features.Text(),
            "dialogue": tfds.features.Text(),
            "turn": tfds.features.Scalar(np.int32),
            "label": tfds.features.ClassLabel(names=list(self._class_names())),
            "transcript": tfds.features.Text(),
            "duration": tfds.features.Scalar(np.float32),
            "gender": tfds.features.Text(),
            # A raw-bytes tensor: tfds.features.Audio keeps samples as an int64 / float list,
            # 4-10 bytes a sample in a tf.train.Example. The rate is in the config and metadata.
            "audio": tfds.features.Tensor(shape=(None,), dtype=AUDIO_DTYPES[cfg.audio_dtype],
                                          encoding=tfds.features.Encoding.BYTES,
                                          doc=f"mono audio at {cfg.sample_rate} Hz"),
        }),
        supervised_keys=("audio", "label"),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    corpus = self.SCANNER.scan(os.fspath(dl_manager.manual_dir), sample_rate=cfg.sample_rate,
                               **dict(cfg.options))
    self.info.metadata["skipped"] = dict(sorted(corpus.skipped.items()))
    self.info.metadata["bad_files"] = dict(sorted(corpus.bad_files.items()))
    self.info.metadata["class_names"] = list(corpus.class_names)
    self.info.metadata["sample_rate"] = corpus.sample_rate
    return {"train": self._generate_examples(corpus)}

  def _generate_examples(self, corpus: Corpus):
    dtype = self.builder_config.audio_dtype
    clipped = {}
    for u in corpus.utterances:
      stored, n = _to_stored(audio.load_wav(u.path, corpus.sample_rate), dtype)
      if n:
        clipped[u.id] = n
      yield u.id, {
          "id": u.id, "speaker": u.speaker, "session": u.session, "dialogue": u.dialogue,
          "turn": u.turn, "label": u.label, "transcript": u.transcript,
          "duration": u.duration, "gender": u.gender, "audio": stored,
      }
    if clipped:
      log.warning("int16 storage clipped %d samples beyond full scale in %d utterances (e.g. %s); "
                  "audio_dtype='float32' keeps them", sum(clipped.values()), len(clipped),
                  sorted(clipped)[:3])


class JaxserIemocap(_ManualCorpusBuilder):
  """IEMOCAP (Busso et al. 2008), 10 speakers in 5 sessions of dyadic conversations."""

  SCANNER = iemocap
  DESCRIPTION = iemocap.__doc__
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Request IEMOCAP from https://sail.usc.edu/iemocap/, extract IEMOCAP_full_release.tar.gz "
      f"and point manual_dir at the folder holding it. Layout: {iemocap.LAYOUT}")
  BUILDER_CONFIGS = [
      CorpusConfig(name=f"{c}_{s}", description=f"IEMOCAP {c}, {s} dialogues, 16 kHz float32",
                   options=(("classes", c), ("subset", s)))
      for c in ("4class", "6class") for s in ("all", "improvised", "scripted")]

  def _class_names(self):
    return iemocap.CLASS_LISTS[dict(self.builder_config.options).get("classes", "4class")]


class JaxserCremad(_ManualCorpusBuilder):
  """CREMA-D (Cao et al. 2014), 91 actors, 12 sentences, 6 emotions."""

  SCANNER = cremad
  DESCRIPTION = cremad.__doc__
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Fetch the AudioWAV folder of https://github.com/CheyneyComputerScience/CREMA-D (git lfs) "
      f"and point manual_dir at the folder holding it. Layout: {cremad.LAYOUT}")
  BUILDER_CONFIGS = [CorpusConfig(name="all", description="CREMA-D, all clips, 16 kHz float32")]


class JaxserEmodb(_ManualCorpusBuilder):
  """EmoDB (Burkhardt et al. 2005), 10 speakers, 10 German sentences, 7 emotions."""

  SCANNER = emodb
  DESCRIPTION = emodb.__doc__
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download EmoDB (http://emodb.bilderbar.info/) and point manual_dir at the folder "
      f"holding its wav folder. Layout: {emodb.LAYOUT}")
  BUILDER_CONFIGS = [CorpusConfig(name="all", description="EmoDB, all utterances, 16 kHz float32")]


BUILDERS = {"iemocap": JaxserIemocap, "cremad": JaxserCremad, "emodb": JaxserEmodb}


def config_for(name: str, sample_rate: int = 16000, audio_dtype: str = "float32",
               **options) -> CorpusConfig:
  """The registered config of corpus `name` matching these settings, or a custom one."""
  if name not in BUILDERS:
    raise ValueError(f"no TFDS builder for corpus {name!r}; choose one of {sorted(BUILDERS)}")
  if audio_dtype not in AUDIO_DTYPES:
    raise ValueError(f"audio_dtype={audio_dtype!r} unknown; choose one of {sorted(AUDIO_DTYPES)}")
  given = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in options.items()
           if v is not None}
  if name == "iemocap":  # spell out the scanner defaults, so no options means 4class_all
    given = {"classes": "4class", "subset": "all", **given}
  opts = tuple(sorted(given.items()))
  for c in BUILDERS[name].BUILDER_CONFIGS:
    if (c.sample_rate, c.audio_dtype, tuple(sorted(c.options))) == (sample_rate, audio_dtype, opts):
      return c
  parts = [str(v) if not isinstance(v, tuple) else "-".join(map(str, v)) for _, v in opts]
  base = "_".join(parts) or "all"
  return CorpusConfig(name=f"{base}_{sample_rate}hz_{audio_dtype}", sample_rate=sample_rate,
                      audio_dtype=audio_dtype, options=opts,
                      description=f"{name} {dict(opts)} at {sample_rate} Hz {audio_dtype}")


def prepare(name: str, manual_dir: str, data_dir: Optional[str] = None, sample_rate: int = 16000,
            audio_dtype: str = "float32", **options) -> tfds.core.DatasetBuilder:
  """Builder of corpus `name` with its dataset prepared from `manual_dir` (no-op if present)."""
  builder = BUILDERS[name](config=config_for(name, sample_rate, audio_dtype, **options),
                           data_dir=data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir)))
  return builder


def load(name: str, manual_dir: str, data_dir: Optional[str] = None, sample_rate: int = 16000,
         audio_dtype: str = "float32", **options) -> Corpus:
  """Corpus `name` read from its prepared TFDS dataset, waveforms in memory."""
  builder = prepare(name, manual_dir, data_dir, sample_rate, audio_dtype, **options)
  meta = builder.info.metadata or {}
  if "skipped" not in meta:
    raise ValueError(f"prepared dataset {builder.data_dir} has no skipped counts in its "
                     f"metadata.json; delete that folder so it is prepared again")
  class_names = tuple(builder.info.features["label"].names)
  utts, waves = [], {}
  ds = builder.as_dataset(split="train", shuffle_files=False)
  for ex in tfds.as_numpy(ds):
    uid = ex["id"].decode()
    utts.append(Utterance(
        id=uid, speaker=ex["speaker"].decode(), label=int(ex["label"]),
        session=ex["session"].decode(), dialogue=ex["dialogue"].decode(), turn=int(ex["turn"]),
        transcript=ex["transcript"].decode(), duration=float(ex["duration"]),
        gender=ex["gender"].decode()))
    waves[uid] = _from_stored(ex["audio"])
  # The same order as a direct scan: corpus / dialogue / turn / id.
  utts.sort(key=lambda u: (u.session, u.dialogue, u.turn, u.id))
  return Corpus(BUILDERS[name].SCANNER.NAME, class_names, sample_rate, utts,
                collections.Counter(meta["skipped"]), dict(meta.get("bad_files", {})),
                waveforms=waves)
