"""Audio features: wav I/O, log filterbank parity, openSMILE + cache, segments, noise at an SNR."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import soundfile as sf

from jaxser.data.corpus import Corpus, Utterance
from jaxser.data.inputs import build_inputs
from jaxser.features import audio, egemaps, fbank, noise, segments

SNRS = (-5.0, 0.0, 5.0, 10.0, 20.0)


def _speechlike(n, sample_rate, seed):
  """A voiced-ish test signal: harmonics under a syllable-rate envelope, plus a pause."""
  rng = np.random.default_rng(seed)
  t = np.arange(n) / sample_rate
  f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
  phase = 2 * np.pi * np.cumsum(f0) / sample_rate
  x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
  x[n // 2: n // 2 + n // 10] = 0.0
  return (0.2 * x + 0.003 * rng.standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------- audio


def test_load_wav_resamples_and_mixes_down(tmp_path):
  sr = 22050
  t = np.arange(sr) / sr
  left = 0.5 * np.sin(2 * np.pi * 440 * t)
  right = 0.1 * np.sin(2 * np.pi * 440 * t)
  path = str(tmp_path / "stereo.wav")
  sf.write(path, np.stack([left, right], 1), sr, subtype="FLOAT")
  x = audio.load_wav(path, 16000)
  assert x.dtype == np.float32 and x.shape == (16000,)
  spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  assert np.argmax(spec) == 440  # 1 s at 16 kHz: bin k is k Hz
  # Channels are averaged: amplitude (0.5 + 0.1) / 2, away from the resampler's edges.
  assert np.max(np.abs(x[2000:-2000])) == pytest.approx(0.3, abs=2e-3)
  same = audio.load_wav(path, sr)
  np.testing.assert_allclose(same, ((left + right) / 2).astype(np.float32), atol=1e-6)


def test_load_wav_errors(tmp_path):
  (tmp_path / "zero.wav").write_bytes(b"")
  (tmp_path / "junk.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
  for name, reason in (("zero.wav", "empty file"), ("junk.wav", "unreadable file"),
                       ("absent.wav", "missing file")):
    with pytest.raises(audio.AudioError, match=str(tmp_path / name)) as info:
      audio.load_wav(str(tmp_path / name), 16000)
    assert info.value.reason == reason


def test_normalize_and_fix_length():
  x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 3 + 2
  y = audio.normalize(x)
  assert y.dtype == np.float32
  assert abs(y.mean()) < 1e-6 and y.std() == pytest.approx(1.0, abs=1e-5)
  silent = audio.normalize(np.full(100, 0.25, np.float32))
  np.testing.assert_array_equal(silent, np.zeros(100, np.float32))
  np.testing.assert_array_equal(audio.fix_length(np.arange(5.0), 3), [0, 1, 2])
  np.testing.assert_array_equal(audio.fix_length(np.arange(3.0), 5), [0, 1, 2, 0, 0])
  frames = audio.fix_length(np.ones((4, 2)), 6)
  assert frames.shape == (6, 2) and frames[4:].sum() == 0


# ---------------------------------------------------------------- log filterbanks

FBANK_CASES = [
    # sample rate, seconds, filters, window, hop, nfft (None = ours), lowfreq, highfreq
    (16000, 2.0, 40, 0.04, 0.01, None, 0, None),  # DKDFMH: 640-sample window, nfft 1024
    (16000, 2.0, 40, 0.04, 0.01, 512, 0, None),  # the package default nfft (truncates)
    (22050, 1.0, 40, 0.04, 0.01, None, 0, None),  # hop 220.5 rounds half up to 221
    (16000, 0.02, 26, 0.025, 0.01, 512, 0, None),  # shorter than a window: one padded frame
    (8000, 1.0, 20, 0.025, 0.01, 256, 300, 3400),
]


@pytest.mark.parametrize("case", FBANK_CASES)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the package's logging.warn
def test_logfbank_matches_python_speech_features(case):
  psf = pytest.importorskip(
      "python_speech_features",
      reason="python_speech_features is the reference for this parity test (test extra)")
  sr, seconds, nfilt, win, hop, nfft, low, high = case
  x = _speechlike(int(seconds * sr), sr, seed=1).astype(np.float64)
  x[:len(x) // 5] = 0.0  # whole frames of exact zeros: energies take the eps floor
  ours = fbank.logfbank(x, sr, num_filters=nfilt, win_len=win, hop=hop, nfft=nfft,
                        lowfreq=low, highfreq=high)
  frame_len = int(np.floor(win * sr + 0.5))
  ref_nfft = nfft or 1 << (frame_len - 1).bit_length()
  ref = psf.logfbank(x, samplerate=sr, winlen=win, winstep=hop, nfilt=nfilt, nfft=ref_nfft,
                     lowfreq=low, highfreq=high, preemph=0.97)
  assert ours.shape == ref.shape and ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_logfbank_default_nfft_covers_the_window():
  x = _speechlike(16000, 16000, seed=2)
  default = fbank.logfbank(x, 16000)
  np.testing.assert_array_equal(default, fbank.logfbank(x, 16000, nfft=1024))
  assert not np.allclose(default, fbank.logfbank(x, 16000, nfft=512), atol=1e-2)
  assert default.shape == (1 + int(np.ceil((16000 - 640) / 160)), 40)


# ---------------------------------------------------------------- eGeMAPS


def test_egemaps_shapes_and_cache(tmp_path, monkeypatch):
  waves = [_speechlike(16000, 16000, seed=s) for s in (3, 4)]
  start = time.perf_counter()
  func = egemaps.functionals(waves, 16000, cache_dir=str(tmp_path), progress=False)
  per_utt = (time.perf_counter() - start) / len(waves)
  lld = egemaps.llds(waves, 16000, cache_dir=str(tmp_path), progress=False)
  assert func.shape == (2, 88) and func.dtype == np.float32 and np.all(np.isfinite(func))
  assert len(lld) == 2 and all(a.shape[1] == 25 and a.shape[0] > 90 for a in lld)
  assert not np.allclose(func[0], func[1])
  files = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs]
  assert len(files) == 4 and all(f.endswith(".npy") for f in files)  # no temp files left
  # A second call reads the cache: extraction must not run at all.
  monkeypatch.setattr(egemaps, "_smile", lambda *a: pytest.fail("re-extracted a cached clip"))
  np.testing.assert_array_equal(egemaps.functionals(waves, 16000, cache_dir=str(tmp_path),
                                                    progress=False), func)
  for a, b in zip(egemaps.llds(waves, 16000, cache_dir=str(tmp_path), progress=False), lld):
    np.testing.assert_array_equal(a, b)
  # The key covers the sample rate and the feature level.
  keys = {egemaps.cache_key(waves[0], sr, level)
          for sr in (16000, 8000) for level in ("functionals", "llds")}
  assert len(keys) == 4
  print(f"eGeMAPS functionals: {per_utt * 1000:.1f} ms per 1 s clip (first call, incl. setup)")


def test_compare_functionals_shape_and_cache_keys(tmp_path):
  wave = _speechlike(8000, 16000, seed=6)  # 0.5 s: ComParE costs ~0.15 s per second of audio
  func = egemaps.functionals([wave], 16000, cache_dir=str(tmp_path), progress=False,
                             feature_set="ComParE_2016")
  assert func.shape == (1, 6373) and func.dtype == np.float32 and np.all(np.isfinite(func))
  assert np.count_nonzero(np.std(func)) and len(list(tmp_path.rglob("*.npy"))) == 1
  # The input kind reads the same cache: one [6373] vector per utterance, no time axis.
  corpus = Corpus("one", ("x",), 16000, [Utterance("u0", "s", 0)], waveforms={"u0": wave})
  inputs = build_inputs(corpus, ml_collections.ConfigDict(dict(kind="compare_functionals",
                                                               cache_dir=str(tmp_path))))
  np.testing.assert_array_equal(inputs.x, func)
  assert not inputs.time_axis and len(list(tmp_path.rglob("*.npy"))) == 1
  # Keys: the feature set enters; eGeMAPS keys keep their pre-ComParE format (caches stay valid).
  version = importlib.metadata.version("opensmile")
  old = hashlib.sha256(f"eGeMAPSv02|functionals|sr=16000|opensmile={version}|".encode()
                       + wave.tobytes()).hexdigest()
  assert egemaps.cache_key(wave, 16000, "functionals") == old
  assert egemaps.cache_key(wave, 16000, "functionals", "ComParE_2016") != old
  with pytest.raises(ValueError, match="feature set 'ComParE'.*ComParE_2016"):
    egemaps.functionals([wave], 16000, progress=False, feature_set="ComParE")


def test_egemaps_after_tensorflow_import(tmp_path):
  """opensmile next to TensorFlow (the trainer's process) must not crash or change values."""
  wave = _speechlike(16000, 16000, seed=5)
  np.save(tmp_path / "wave.npy", wave)
  script = (
      "import sys, numpy as np, tensorflow\n"
      "from jaxser.features import egemaps\n"
      f"w = np.load({str(tmp_path / 'wave.npy')!r})\n"
      "f = egemaps.functionals([w], 16000, progress=False)\n"
      "l = egemaps.llds([w], 16000, progress=False)[0]\n"
      f"np.save({str(tmp_path / 'func.npy')!r}, f); np.save({str(tmp_path / 'lld.npy')!r}, l)\n")
  repo = str(Path(__file__).resolve().parents[1])
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": repo}
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  np.testing.assert_array_equal(np.load(tmp_path / "func.npy"),
                                egemaps.functionals([wave], 16000, progress=False))
  np.testing.assert_array_equal(np.load(tmp_path / "lld.npy"),
                                egemaps.llds([wave], 16000, progress=False)[0])


# ---------------------------------------------------------------- segments


def test_segment_waveform_and_frames():
  x = np.arange(10, dtype=np.float32)
  segs = segments.segment(x, 4, 2)
  np.testing.assert_array_equal(segs, [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]])
  np.testing.assert_array_equal(segments.segment(x, 4, 3)[-1], [6, 7, 8, 9])  # fits exactly
  segs = segments.segment(x, 4, 4)  # tail [8, 9] dropped
  np.testing.assert_array_equal(segs, [[0, 1, 2, 3], [4, 5, 6, 7]])
  segs = segments.segment(x, 4, 4, pad_tail=True)
  np.testing.assert_array_equal(segs, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]])
  assert segments.num_segments(10, 4, 4, pad_tail=True) == 3
  short = segments.segment(np.ones(3, np.float32), 5, 2)
  np.testing.assert_array_equal(short, [[1, 1, 1, 0, 0]])
  frames = np.arange(14, dtype=np.float32).reshape(7, 2)
  fsegs = segments.segment(frames, 3, 2)
  assert fsegs.shape == (3, 3, 2)
  np.testing.assert_array_equal(fsegs[1], frames[2:5])
  # DKDFMH: 2 s segments, 1 s hop (train) and 0.4 s hop (test) on a 5 s utterance at 16 kHz.
  assert segments.segment(np.zeros(80000), 32000, 16000).shape == (4, 32000)
  assert segments.segment(np.zeros(80000), 32000, 6400).shape == (8, 32000)


def test_segment_all_and_aggregate():
  seqs = [np.zeros(10), np.zeros(3), np.zeros(6)]
  segs, index = segments.segment_all(seqs, 4, 2)
  np.testing.assert_array_equal(index, [0, 0, 0, 0, 1, 2, 2])
  assert segs.shape == (7, 4)
  logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.5, 0.0], [3.0, 0.0, 0.0],
                     [0.0, 0.0, 5.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  mean_prob = segments.aggregate(logits, index, 3, "mean_prob")
  np.testing.assert_allclose(mean_prob[0], probs[:4].mean(0), rtol=1e-6)
  np.testing.assert_allclose(mean_prob[2], probs[5:].mean(0), rtol=1e-6)
  np.testing.assert_allclose(segments.aggregate(logits, index, 3, "mean_logit")[0],
                             logits[:4].mean(0), rtol=1e-6)
  votes = segments.aggregate(logits, index, 3, "vote")
  np.testing.assert_allclose(votes[0], [0.5, 0.5, 0.0])
  np.testing.assert_allclose(votes[1], [0.0, 0.0, 1.0])
  assert votes[0].argmax() == 0  # a tie goes to the lower class index
  with pytest.raises(ValueError, match=r"utterances \[3\] have no segments"):
    segments.aggregate(logits, index, 4)
  with pytest.raises(ValueError, match="how='max'"):
    segments.aggregate(logits, index, 3, "max")


# ---------------------------------------------------------------- noise


@pytest.fixture(scope="module")
def noise_bank(tmp_path_factory):
  """Recordings at 8 kHz (resampled on load): one long, one shorter than the clean clips."""
  d = tmp_path_factory.mktemp("noisex")
  rng = np.random.default_rng(7)
  sf.write(d / "factory1.wav", (0.1 * rng.standard_normal(24000)).astype(np.float32), 8000)
  hum = 0.2 * np.sin(2 * np.pi * 50 * np.arange(2000) / 8000) + 0.01 * rng.standard_normal(2000)
  sf.write(d / "Hum.wav", hum.astype(np.float32), 8000)
  pool = [_speechlike(8000 + 1000 * i, 16000, seed=100 + i) for i in range(6)]
  speakers = ["a", "a", "b", "b", "c", "c"]
  return noise.NoiseBank.from_dir(str(d), 16000).with_babble(pool, speakers, k=3)


def test_noise_bank_sources(noise_bank, tmp_path):
  assert noise_bank.names == ["factory1", "hum", "white", "pink", "brown", "babble"]
  assert len(noise_bank.recordings["factory1"]) == 48000  # 3 s at 8 kHz read at 16 kHz
  with pytest.raises(ValueError, match="noise 'jet' is unknown"):
    noise_bank.noise("jet", 100, np.random.default_rng(0))
  with pytest.raises(FileNotFoundError, match="NOISEX-92"):
    noise.NoiseBank.from_dir(str(tmp_path / "none"), 16000)


@pytest.mark.parametrize("name", ["white", "pink", "brown", "babble", "factory1", "hum"])
def test_mix_at_exact_snr(noise_bank, name):
  clean = _speechlike(16000, 16000, seed=11)  # 1 s: longer than 'hum', so that one loops
  for snr in SNRS:
    rng = np.random.default_rng(int(snr) + 50)
    noisy = noise_bank.mix(clean, name, snr, rng, speaker="a")
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert abs(noise.measured_snr(clean, noisy) - snr) <= 0.05, (name, snr)
  # Deterministic in the generator's state.
  a = noise_bank.mix(clean, name, 5.0, np.random.default_rng(1), speaker="a")
  b = noise_bank.mix(clean, name, 5.0, np.random.default_rng(1), speaker="a")
  np.testing.assert_array_equal(a, b)


def test_noise_crop_and_loop():
  rng = np.random.default_rng(0)
  long_noise = np.arange(100.0)
  for _ in range(5):
    seg = noise._fit(long_noise, 30, rng)
    assert np.all(np.diff(seg) == 1) and 0 <= seg[0] <= 70  # a contiguous crop
  seg = noise._fit(np.arange(7.0), 20, rng)
  np.testing.assert_array_equal(seg, (seg[0] + np.arange(20)) % 7)  # looped from an offset


def test_babble_leaves_out_the_clean_speaker():
  rng = np.random.default_rng(0)
  # The clean speaker's own utterance is NaN: any use of it would show in the babble.
  pool = [np.full(100, np.nan), np.ones(100), -np.ones(80), np.linspace(-1, 1, 90)]
  speakers = ["me", "x", "y", "z"]
  bank = noise.NoiseBank(16000).with_babble(pool, speakers, k=3)
  for _ in range(5):
    assert np.all(np.isfinite(bank.noise("babble", 200, rng, speaker="me")))
  with pytest.raises(ValueError, match="k=4 >= 1 utterances but the pool holds 3"):
    noise.NoiseBank(16000).with_babble(pool, speakers, k=4).noise("babble", 200, rng, speaker="me")


def test_coloured_noise_spectra():
  n = 1 << 16
  freqs = np.fft.rfftfreq(n)
  for gen, slope in ((noise.white, 0.0), (noise.pink, -1.0), (noise.brown, -2.0)):
    power = np.abs(np.fft.rfft(gen(n, np.random.default_rng(3)))) ** 2
    band = (freqs > 1e-3) & (freqs < 0.4)
    fit = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert fit == pytest.approx(slope, abs=0.1), gen.__name__

