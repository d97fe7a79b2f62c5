"""Built-in synthetic corpus: records, determinism, levels, transcripts, and learnability.

The learnability test runs eGeMAPS functionals (opensmile) + logistic regression
leave-one-speaker-out on 8 speakers x 24 utterances; UA must sit well above chance (0.25)
and well below perfect.
"""

from __future__ import annotations

import collections
import re

import ml_collections
import numpy as np
import pytest
import scipy.signal

from jaxser.data import registry, synthetic

SMALL = dict(num_speakers=4, utterances_per_speaker=6, min_seconds=1.0, max_seconds=1.5)


@pytest.fixture(scope="module")
def corpus():
  """The learnability corpus: 8 speakers x 24 utterances, defaults otherwise."""
  return synthetic.build(dict(utterances_per_speaker=24))


def _active_db(wave: np.ndarray) -> float:
  """Level (dB) of the loudest 30% of 20 ms frames: speech, not pauses."""
  frames = wave[:len(wave) // 320 * 320].reshape(-1, 320).astype(np.float64)
  power = np.sort(np.mean(frames ** 2, axis=1))[::-1]
  return 10.0 * np.log10(np.mean(power[:max(1, int(0.3 * len(power)))]))


def test_records_and_waveforms():
  cfg = ml_collections.ConfigDict(dict(name="synthetic", **SMALL))
  c = registry.load_corpus(cfg)
  assert c.name == "synthetic"
  assert c.class_names == ("neutral", "happy", "angry", "sad")
  assert c.sample_rate == 16000
  assert c.speakers == ["spk00", "spk01", "spk02", "spk03"]
  assert len(c.utterances) == 4 * 6
  assert collections.Counter(u.speaker for u in c.utterances) == {f"spk0{s}": 6 for s in range(4)}
  assert [u.id for u in c.utterances[:2]] == ["spk00_0000", "spk00_0001"]
  genders = collections.defaultdict(set)
  for u in c.utterances:
    assert re.fullmatch(r"spk\d\d_\d{4}", u.id) and u.id.startswith(u.speaker)
    assert u.session == f"sess{int(u.speaker[3:]) // 2}"
    assert u.path == "" and u.transcript and u.gender in ("F", "M")
    genders[u.session].add((u.speaker, u.gender))
    w = c.waveforms[u.id]
    assert w.dtype == np.float32 and w.ndim == 1
    assert u.duration == len(w) / 16000
    assert 1.0 <= u.duration <= 1.5
    assert np.all(np.isfinite(w)) and np.max(np.abs(w)) <= 1.0
    assert np.std(w) > 1e-3  # not silent
  for session, members in genders.items():  # IEMOCAP-like: one woman and one man per session
    assert sorted(g for _, g in members) == ["F", "M"], session
  np.testing.assert_array_equal(c.waveform(c.utterances[3]), c.waveforms[c.utterances[3].id])


def test_deterministic_and_independent_of_corpus_size():
  a = synthetic.build(dict(SMALL, seed=3))
  b = synthetic.build(dict(SMALL, seed=3))
  assert a.utterances == b.utterances
  for uid, w in a.waveforms.items():
    np.testing.assert_array_equal(w, b.waveforms[uid])
  # A bigger corpus holds the same utterances under the same ids.
  big = synthetic.build(dict(SMALL, seed=3, num_speakers=5, utterances_per_speaker=8))
  assert big.by_id()["spk03_0005"] == a.by_id()["spk03_0005"]
  for uid, w in a.waveforms.items():
    np.testing.assert_array_equal(w, big.waveforms[uid])
  other = synthetic.build(dict(SMALL, seed=4))
  assert [u.label for u in other.utterances] != [u.label for u in a.utterances]
  for uid, w in a.waveforms.items():
    assert len(w) != len(other.waveforms[uid]) or not np.array_equal(w, other.waveforms[uid])


def test_durations_follow_config():
  c = synthetic.build(dict(num_speakers=2, utterances_per_speaker=10, min_seconds=2.0,
                           max_seconds=2.5, sample_rate=8000))
  assert c.sample_rate == 8000
  durations = np.array([u.duration for u in c.utterances])
  assert durations.min() >= 2.0 and durations.max() <= 2.5
  assert durations.max() - durations.min() > 0.2  # lengths vary inside the range
  for u in c.utterances:
    assert len(c.waveforms[u.id]) == round(u.duration * 8000)


def test_transcript_emotion_rate():
  rng = np.random.default_rng(0)
  n = 20000
  for prob in (0.0, 0.4, 1.0):
    labels = rng.integers(0, 4, n)
    texts = [synthetic.make_transcript(rng, int(y), prob) for y in labels]
    emotional = np.array([t in synthetic.EMOTION_SENTENCES[y] for t, y in zip(texts, labels)])
    shared = np.array([t in synthetic.SHARED_SENTENCES for t in texts])
    assert np.all(emotional ^ shared)
    tol = 4.0 * np.sqrt(prob * (1.0 - prob) / n)
    assert abs(emotional.mean() - prob) <= tol, (prob, emotional.mean())
  # The pools do not overlap, so an emotional sentence names exactly one class.
  pools = [set(p) for p in synthetic.EMOTION_SENTENCES] + [set(synthetic.SHARED_SENTENCES)]
  assert sum(len(p) for p in pools) == len(set().union(*pools))
  none = synthetic.build(dict(SMALL, transcript_emotion_prob=0.0))
  assert all(u.transcript in synthetic.SHARED_SENTENCES for u in none.utterances)
  every = synthetic.build(dict(SMALL, transcript_emotion_prob=1.0))
  assert all(u.transcript in synthetic.EMOTION_SENTENCES[u.label] for u in every.utterances)


def test_corpus_rate_and_class_balance(corpus):
  counts = corpus.class_counts()
  assert set(counts) == set(synthetic.CLASS_NAMES)
  assert all(0.12 * 192 <= v <= 0.45 * 192 for v in counts.values()), counts
  rate = np.mean([u.transcript in synthetic.EMOTION_SENTENCES[u.label] for u in corpus.utterances])
  assert abs(rate - 0.4) <= 4.0 * np.sqrt(0.4 * 0.6 / 192), rate


def test_levels_keep_emotion_loudness(corpus):
  """A fixed global gain (not per-utterance peak normalisation) keeps loudness cues."""
  level = collections.defaultdict(list)
  peaks = []
  for u in corpus.utterances:
    w = corpus.waveforms[u.id]
    level[u.label].append(_active_db(w))
    peaks.append(np.max(np.abs(w)))
  med = {synthetic.CLASS_NAMES[k]: np.median(v) for k, v in level.items()}
  assert med["angry"] > med["happy"] > med["neutral"] > med["sad"], med
  assert med["angry"] - med["sad"] > 6.0, med
  peaks = np.array(peaks)
  assert peaks.max() <= 1.0
  # Headroom: nearly every take peaks well below full scale, so few were limited.
  assert np.mean(peaks > 0.97) < 0.05 and np.median(peaks) < 0.5


def test_time_varying_filter_matches_direct_recursion():
  """Frame-wise lfilter with carried output state equals the sample-by-sample recursion."""
  rng = np.random.default_rng(1)
  hop, num_frames, sr = 40, 12, 16000
  freqs = np.repeat(rng.uniform([300, 900, 2200], [800, 2000, 3000], (4, 3)), 3, axis=0)
  gain, den = synthetic._all_pole_formants(freqs, np.full_like(freqs, 90.0), sr)
  x = rng.standard_normal(num_frames * hop - 7)
  y = synthetic._time_varying_filter(x, gain, den, hop, ring=2)
  ref = np.zeros(len(x))
  for n in range(len(x)):
    f = n // hop
    past = sum(den[f, j] * ref[n - j] for j in range(1, den.shape[1]) if n - j >= 0)
    ref[n] = gain[f] * x[n] - past
  np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
  # Each frame's filter is a stable resonator cascade with unity gain at DC.
  assert np.all(np.abs(np.roots(den[0])) < 1.0)
  np.testing.assert_allclose(gain, den.sum(axis=1))
  w, h = scipy.signal.freqz([gain[0]], den[0], worN=[0.0, 2 * np.pi * freqs[0, 0] / sr])
  assert abs(h[0]) == pytest.approx(1.0) and abs(h[1]) > 3.0


@pytest.mark.parametrize("key,value", [("num_speakers", 0), ("min_seconds", 5.0),
                                       ("transcript_emotion_prob", 1.5),
                                       ("noise_snr_db", (30.0, 10.0)), ("seed", -1)])
def test_bad_config_names_the_setting(key, value):
  with pytest.raises(ValueError, match=f"config.corpus.{key}"):
    synthetic.build({key: value})


def test_egemaps_logistic_regression_loso_is_learnable_not_trivial(corpus):
  pytest.importorskip("opensmile")
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import confusion_matrix, recall_score
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  from jaxser.features import egemaps  # its loader: opensmile beside TensorFlow is unsafe
  x = egemaps.functionals([corpus.waveforms[u.id] for u in corpus.utterances],
                          corpus.sample_rate, progress=False)
  assert x.shape == (192, 88) and np.all(np.isfinite(x))
  y = np.array([u.label for u in corpus.utterances])
  speakers = np.array([u.speaker for u in corpus.utterances])
  pred = np.zeros_like(y)
  for s in corpus.speakers:
    test = speakers == s
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x[~test], y[~test])
    pred[test] = clf.predict(x[test])
  ua = recall_score(y, pred, average="macro")
  cm = confusion_matrix(y, pred)
  print(f"eGeMAPS + LR, LOSO over 8 speakers: UA {ua:.3f}\n{cm}")
  assert 0.45 <= ua <= 0.90, (ua, cm)
