"""Bad audio files, one test per case: each is read, or refused with an error naming the file
(features.audio's rules), and a corpus scan lists the refused ones for load_corpus to stop on,
or to leave out when asked (--skip_bad_files)."""

import os
import time

import numpy as np
import pytest
import soundfile as sf

import fixtures
from jaxser.data import emodb, registry
from jaxser.errors import UserError
from jaxser.features import audio, egemaps

SR = 16000


def _tone(seconds: float, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
  t = np.arange(int(round(seconds * sr))) / sr
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _refused(path, reason: str, *words: str):
  """Both readers refuse `path` with `reason`, naming the file (and `words`) in one line."""
  for read in (audio.check, lambda p: audio.load_wav(p, SR)):
    with pytest.raises(audio.AudioError) as info:
      read(str(path))
    e = info.value
    assert e.reason == reason and e.path == str(path), (e.reason, str(e))
    assert str(path) in str(e) and "\n" not in str(e)
    for w in words:
      assert w in str(e), str(e)
    assert isinstance(e, UserError)  # the CLI prints it as one line, no traceback


def test_empty_file(tmp_path):
  (tmp_path / "a.wav").write_bytes(b"")
  _refused(tmp_path / "a.wav", "empty file", "0 bytes")


def test_zero_length_audio(tmp_path):
  sf.write(tmp_path / "a.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
  _refused(tmp_path / "a.wav", "empty file", "no samples")


def test_pure_silence(tmp_path):
  """Refused: no speech to classify, and normalize would make it zeros."""
  sf.write(tmp_path / "a.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
  _refused(tmp_path / "a.wav", "silent file", "silent")
  assert not np.any(audio.normalize(np.zeros(100, np.float32)))  # documented: zeros stay zeros


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_samples(tmp_path, value):
  """Refused, naming the file, before librosa's resampler sees them (a 22.05 kHz file); and
  normalize refuses them instead of turning the clip into silence."""
  x = _tone(1.0, 22050)
  x[100:110] = value
  sf.write(tmp_path / "a.wav", x, 22050, subtype="FLOAT")
  _refused(tmp_path / "a.wav", "non-finite samples", "10 NaN or infinite samples")
  with pytest.raises(ValueError, match="10 of 22050 samples are NaN or infinite"):
    audio.normalize(x)


def test_clipped_audio_is_kept(tmp_path):
  """Kept: clipping distorts but keeps the speech; refusing it would drop loud speech."""
  x = np.clip(_tone(1.0, amp=3.0), -1.0, 1.0)
  sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
  assert audio.check(str(tmp_path / "a.wav")).frames == SR
  y = audio.load_wav(str(tmp_path / "a.wav"), SR)
  assert np.max(np.abs(y)) == pytest.approx(1.0, abs=1e-4)
  z = audio.normalize(y)
  assert np.all(np.isfinite(z)) and z.std() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_sample_rates_are_resampled(tmp_path, rate):
  sf.write(tmp_path / "a.wav", _tone(1.0, rate), rate, subtype="PCM_16")
  info = audio.check(str(tmp_path / "a.wav"))
  assert (info.sample_rate, info.duration) == (rate, 1.0)
  y = audio.load_wav(str(tmp_path / "a.wav"), SR)
  assert y.shape == (SR,) and y.dtype == np.float32
  assert np.argmax(np.abs(np.fft.rfft(y * np.hanning(SR)))) == 440  # 1 s: bin k is k Hz


def test_stereo_is_averaged(tmp_path):
  x = np.stack([_tone(1.0), 0.5 * _tone(1.0)], 1)
  sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
  assert audio.check(str(tmp_path / "a.wav")).channels == 2
  np.testing.assert_allclose(audio.load_wav(str(tmp_path / "a.wav"), SR), 0.75 * _tone(1.0),
                             atol=1e-4)


def test_truncated_header(tmp_path):
  sf.write(tmp_path / "good.wav", _tone(1.0), SR, subtype="PCM_16")
  (tmp_path / "a.wav").write_bytes((tmp_path / "good.wav").read_bytes()[:30])
  _refused(tmp_path / "a.wav", "unreadable file", "cannot be read")


def test_data_chunk_cut_short(tmp_path):
  """23 ms of a 1 s file left: libsndfile would read the 23 ms without a word."""
  sf.write(tmp_path / "good.wav", _tone(1.0), SR, subtype="PCM_16")
  (tmp_path / "a.wav").write_bytes((tmp_path / "good.wav").read_bytes()[:44 + 2 * 368])
  assert sf.info(str(tmp_path / "a.wav")).frames == 368
  _refused(tmp_path / "a.wav", "truncated file", "promises 1.000 s", "holds 0.023 s")
  # Cut mid-file, with plenty left, it is still a damaged copy.
  (tmp_path / "b.wav").write_bytes((tmp_path / "good.wav").read_bytes()[:44 + SR])
  _refused(tmp_path / "b.wav", "truncated file", "holds 0.500 s")


def test_too_short_clip_is_refused_before_opensmile(tmp_path):
  """A whole 23 ms file: refused on read, and opensmile (NaN features) is never reached."""
  sf.write(tmp_path / "a.wav", _tone(0.023), SR, subtype="PCM_16")
  _refused(tmp_path / "a.wav", "too short", "0.023 s", f"{audio.MIN_SECONDS} s")
  with pytest.raises(ValueError, match=r"clip\.wav holds 0\.023 s of audio, less than the 0\.06"):
    egemaps.functionals([_tone(0.023)], SR, progress=False, names=["clip.wav"])


def test_non_audio_file_named_wav(tmp_path):
  (tmp_path / "a.wav").write_text("name,label\n03a01Fa,happiness\n" * 50)
  _refused(tmp_path / "a.wav", "unreadable file", "cannot be read")


def test_ten_minute_file(tmp_path):
  """Kept and read whole (the check in blocks); waveform inputs cut it to max_seconds."""
  from ml_collections import ConfigDict

  from jaxser.data.corpus import Corpus, Utterance
  from jaxser.data.inputs import build_inputs
  rng = np.random.default_rng(0)
  x = np.tile(_tone(1.0), 600) + 0.01 * rng.standard_normal(600 * SR).astype(np.float32)
  sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
  start = time.perf_counter()
  assert audio.check(str(tmp_path / "a.wav")).duration == 600.0
  y = audio.load_wav(str(tmp_path / "a.wav"), SR)
  assert y.shape == (600 * SR,) and time.perf_counter() - start < 10
  corpus = Corpus("c", ("x",), SR, [Utterance("a", "s", 0, path=str(tmp_path / "a.wav"))])
  inputs = build_inputs(corpus, ConfigDict(dict(kind="waveform", max_seconds=2.0)))
  assert inputs.x.shape == (1, 2 * SR) and inputs.length.tolist() == [2 * SR]


# ---------------------------------------------------------------- a corpus scan


BAD = {  # EmoDB name -> (writer, reason)
    "03a01Wa": (lambda p: open(p, "wb").close(), "empty file"),
    "03a02Wa": (lambda p: sf.write(p, np.zeros(0, np.float32), SR), "empty file"),
    "03a04Wa": (lambda p: sf.write(p, np.zeros(SR, np.float32), SR), "silent file"),
    "03a05Wa": (lambda p: sf.write(p, np.where(np.arange(SR) == 5, np.nan, _tone(1.0)), SR,
                                   subtype="FLOAT"), "non-finite samples"),
    "03a07Wa": (lambda p: open(p, "wb").write(b"RIFF\x10\x00\x00\x00WAVEfmt "), "unreadable file"),
    "03b01Wa": (lambda p: (sf.write(p, _tone(1.0), SR, subtype="PCM_16"),
                           _cut(p, 44 + 2 * 368)), "truncated file"),
    "03b02Wa": (lambda p: open(p, "w").write("not audio\n" * 100), "unreadable file"),
    "03b03Wa": (lambda p: sf.write(p, _tone(0.023), SR, subtype="PCM_16"), "too short"),
}
GOOD = {  # EmoDB name -> writer: kept
    "08a01Fa": lambda p: fixtures.write_wav(p, SR, SR, seed=0),
    "08a02Fa": lambda p: sf.write(p, np.clip(_tone(1.0, amp=3.0), -1, 1), SR, subtype="PCM_16"),
    "08a04Fa": lambda p: fixtures.write_wav(p, 8000, 8000, seed=1),
    "08a05Fa": lambda p: fixtures.write_wav(p, 48000, 48000, seed=2),
    "08a07Fa": lambda p: sf.write(p, np.stack([_tone(1.0), _tone(1.0)], 1), SR),
}


def _cut(path, n: int):
  data = open(path, "rb").read()[:n]
  open(path, "wb").write(data)


@pytest.fixture
def bad_emodb(tmp_path):
  wav = tmp_path / "emodb" / "wav"
  wav.mkdir(parents=True)
  for name, (write, _) in BAD.items():
    write(str(wav / f"{name}.wav"))
  for name, write in GOOD.items():
    write(str(wav / f"{name}.wav"))
  return str(tmp_path / "emodb")


def test_scan_lists_every_bad_file_and_keeps_the_rest(bad_emodb):
  corpus = emodb.scan(bad_emodb)
  assert sorted(u.id for u in corpus.utterances) == sorted(GOOD)
  wav = os.path.join(bad_emodb, "wav")
  assert corpus.bad_files == {os.path.join(wav, f"{n}.wav"): r for n, (_, r) in BAD.items()}
  reasons = [r for _, r in BAD.values()]
  assert dict(corpus.skipped) == {r: reasons.count(r) for r in set(reasons)}


def test_load_corpus_stops_on_bad_files_in_one_line(bad_emodb):
  with pytest.raises(UserError) as info:
    registry.load_corpus(dict(name="emodb", manual_dir=bad_emodb))
  msg = str(info.value)
  assert "\n" not in msg
  assert msg.startswith(f"corpus 'emodb': 8 audio file(s) under {bad_emodb} cannot be used: "
                        "wav/03a01Wa.wav (empty file), wav/03a02Wa.wav (empty file), "
                        "wav/03a04Wa.wav (silent file), wav/03a05Wa.wav (non-finite samples),")
  assert msg.endswith("; fix or delete them, or pass --skip_bad_files to train without them")


def test_load_corpus_names_ten_bad_files_and_counts_the_rest(tmp_path):
  wav = tmp_path / "wav"
  wav.mkdir()
  for k in range(1, 13):
    (wav / f"03a{k:02d}Wa.wav").write_bytes(b"")
  fixtures.write_wav(str(wav / "03b01Wa.wav"), SR, SR, seed=0)
  with pytest.raises(UserError, match=r"12 audio file\(s\) .*wav/03a10Wa\.wav \(empty file\) "
                                      r"and 2 more; fix"):
    registry.load_corpus(dict(name="emodb", manual_dir=str(tmp_path)))


def test_skip_bad_files_names_each_and_leaves_them_out(bad_emodb, capsys):
  corpus = registry.load_corpus(dict(name="emodb", manual_dir=bad_emodb), skip_bad_files=True)
  assert sorted(u.id for u in corpus.utterances) == sorted(GOOD)
  err = capsys.readouterr().err.splitlines()
  assert err == [f"emodb: leaving out wav/{n}.wav ({r}) (--skip_bad_files)"
                 for n, (_, r) in sorted(BAD.items())]
  assert sum(corpus.skipped.values()) == len(BAD)
