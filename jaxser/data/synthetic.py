"""Built-in synthetic emotional-speech corpus: a source-filter synthesiser with emotional prosody.

Needs nothing downloaded, so the quickstart config runs anywhere. Every utterance is a
sequence of syllables (unvoiced consonant onset, voiced nucleus, gap) voiced by a
glottal-pulse source that follows an f0 contour, shaped by time-varying formant
resonators that glide between vowel targets, plus aspiration and background noise.
Emotion moves pitch level and range, loudness, speaking rate, spectral tilt,
breathiness, jitter and shimmer; the speaker moves base pitch (by gender), vocal-tract
length, loudness and rate. Per-utterance variation makes happy/angry and neutral/sad
overlap, so the task is learnable but not trivial.

Each utterance draws from its own generator seeded by (seed, speaker, index), so an
utterance is the same whatever the corpus size or generation order.
"""

from __future__ import annotations

import dataclasses

import chex
import numpy as np
import scipy.signal

from jaxser.data.corpus import Corpus, Utterance

CLASS_NAMES = ("neutral", "happy", "angry", "sad")
NEUTRAL, HAPPY, ANGRY, SAD = range(4)
# IEMOCAP-like mild imbalance: neutral a little more frequent.
CLASS_PROBS = (0.31, 0.23, 0.23, 0.23)

# Sentences whose words carry the emotion (used with probability transcript_emotion_prob).
EMOTION_SENTENCES = (
    (  # neutral: matter-of-fact statements
        "the meeting starts at ten",
        "i will send you the report later",
        "the bus leaves from the main station",
        "we need two more chairs in this room",
        "the file is in the second folder",
        "it is on the table by the door",
        "i checked the numbers this morning",
        "the shop closes at six today",
        "we can talk about it tomorrow",
        "the train was on time as usual",
    ),
    (  # happy
        "i am so happy for you",
        "this is the best day of my life",
        "that is wonderful news",
        "i love it thank you so much",
        "we did it i can not believe it",
        "oh that is fantastic",
        "i am really excited about this",
        "you made my day",
        "this is so much fun",
        "i am thrilled to see you again",
    ),
    (  # angry
        "i am so furious about this",
        "how dare you say that to me",
        "this is completely unacceptable",
        "stop lying to me right now",
        "i have had enough of this",
        "get out of my way",
        "you never listen to me",
        "that is ridiculous and you know it",
        "i am sick of your excuses",
        "do not ever do that again",
    ),
    (  # sad
        "i miss her so much",
        "nothing ever goes right for me",
        "i feel so alone tonight",
        "he is never coming back",
        "i am so tired of all this",
        "it hurts more than i can say",
        "i lost everything",
        "i wish things were different",
        "nobody cares anymore",
        "i can not stop crying",
    ),
)

# Emotion-free sentences shared by every class (the other 1 - transcript_emotion_prob).
SHARED_SENTENCES = (
    "what did you say",
    "i am going to the office",
    "can you tell me where it is",
    "we talked about it yesterday",
    "he said he would call back",
    "that was the last one",
    "i think it is over there",
    "she is waiting outside",
    "let me see that for a second",
    "i do not know what to do",
    "where are we going now",
    "it was just a few minutes ago",
    "they want an answer by friday",
    "you have to look at this",
    "i was there the whole time",
    "is that what you wanted",
    "we will find out soon",
    "he told me about the letter",
    "this is the one i meant",
    "why are you asking me that",
)

# Adult male vowel formants F1-F3 in Hz (Peterson & Barney style averages).
_VOWELS = (
    (270.0, 2290.0, 3010.0),  # i
    (530.0, 1840.0, 2480.0),  # e
    (660.0, 1720.0, 2410.0),  # ae
    (730.0, 1090.0, 2440.0),  # a
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
    (500.0, 1500.0, 2500.0),  # schwa
)
_FORMANT_BW = (80.0, 100.0, 140.0)
_HIGH_FORMANTS = ((3500.0, 250.0), (4500.0, 300.0))  # F4, F5 (Hz, bandwidth), static
_REF_RMS = 0.04  # active-speech RMS at 0 dB level; loud utterances keep headroom below 1.0
_PEAK_LIMIT = 0.98
_FRAME_SECONDS = 0.01  # formant update interval (Klatt-style synthesisers use 5-10 ms)


@dataclasses.dataclass(frozen=True)
class Speaker:
  """Speaker traits: base pitch, vocal-tract scale, loudness and rate offsets, voice quality."""

  name: str
  gender: str
  session: str
  f0_hz: float
  formant_scale: float
  level_db: float
  rate_scale: float
  open_quotient: float
  tilt: float
  jitter: float
  breath_db: float
  expressiveness: float  # scales this speaker's emotional deviations from neutral


@dataclasses.dataclass(frozen=True)
class Prosody:
  """One utterance's voice settings (all emotion-, speaker- and chance-dependent)."""

  f0_hz: float
  f0_range_st: float
  declination_st: float
  final_rise_st: float
  level_db: float
  rate_sps: float
  pause_prob: float
  open_quotient: float
  tilt: float
  jitter: float
  shimmer_db: float
  breath_db: float
  consonant_db: float
  f1_scale: float
  f23_scale: float
  bw_scale: float
  formant_scale: float


# Per-emotion means: f0 shift and f0 accent range (semitones), level (dB), rate
# (syllables/s), glottal open quotient (lower = pressed voice, more high frequencies),
# tilt (one-pole low-pass pole; higher = steeper), jitter (relative period deviation),
# shimmer (dB), breath (aspiration dB re voicing), pause probability per syllable,
# declination (st), final-rise probability, consonant level (dB re voicing), F1 scale,
# F2/F3 scale (a smile raises them) and formant bandwidth scale.
_EMOTION = {
    NEUTRAL: dict(f0=0.0, rng=5.0, level=0.0, rate=4.3, oq=0.62, tilt=0.55, jit=0.018,
                  shim=0.5, breath=-26.0, pause=0.08, decl=2.5, rise=0.1, cons=-16.0,
                  f1=1.0, f23=1.0, bw=1.0),
    HAPPY: dict(f0=3.5, rng=9.0, level=4.0, rate=5.0, oq=0.52, tilt=0.35, jit=0.02,
                shim=0.6, breath=-26.0, pause=0.05, decl=2.0, rise=0.45, cons=-15.0,
                f1=1.12, f23=1.04, bw=1.0),
    ANGRY: dict(f0=3.0, rng=7.5, level=8.0, rate=5.2, oq=0.42, tilt=0.1, jit=0.026,
                shim=0.8, breath=-32.0, pause=0.04, decl=4.0, rise=0.05, cons=-12.0,
                f1=1.15, f23=1.0, bw=0.9),
    SAD: dict(f0=-1.5, rng=2.8, level=-5.0, rate=3.3, oq=0.72, tilt=0.75, jit=0.022,
              shim=0.8, breath=-18.0, pause=0.18, decl=1.5, rise=0.05, cons=-19.0,
              f1=0.97, f23=0.98, bw=1.25),
}

# Stream tags keep speaker, label/text and audio draws independent of each other.
_SPEAKER_STREAM, _SESSION_STREAM, _TEXT_STREAM, _AUDIO_STREAM = 1, 2, 3, 4


def _rng(*key: int) -> np.random.Generator:
  return np.random.default_rng([int(k) for k in key])


def make_speaker(seed: int, index: int) -> Speaker:
  """Draws speaker `index`'s traits; sessions pair spk(2k), spk(2k+1), one of each gender."""
  session = index // 2
  female_first = _rng(seed, _SESSION_STREAM, session).random() < 0.5
  female = (index % 2 == 0) == female_first
  r = _rng(seed, _SPEAKER_STREAM, index)
  if female:
    f0, scale, breath = r.normal(205.0, 18.0), r.normal(1.16, 0.04), 3.0
  else:
    f0, scale, breath = r.normal(115.0, 10.0), r.normal(1.0, 0.04), 0.0
  return Speaker(
      name=f"spk{index:02d}", gender="F" if female else "M", session=f"sess{session}",
      f0_hz=float(f0), formant_scale=float(scale), level_db=float(r.normal(0.0, 2.0)),
      rate_scale=float(np.exp(r.normal(0.0, 0.1))), open_quotient=float(r.normal(0.0, 0.04)),
      tilt=float(r.normal(0.0, 0.08)), jitter=float(np.exp(r.normal(0.0, 0.25))),
      breath_db=float(breath + r.normal(0.0, 3.0)),
      expressiveness=float(np.clip(r.normal(1.0, 0.15), 0.6, 1.4)))


def sample_prosody(rng: np.random.Generator, label: int, spk: Speaker) -> Prosody:
  """Emotion means, scaled by the speaker's expressiveness, plus per-utterance variation."""
  e, n = _EMOTION[label], _EMOTION[NEUTRAL]
  x = spk.expressiveness

  def mix(key):  # neutral + speaker-scaled emotional deviation
    return n[key] + x * (e[key] - n[key])

  # A shared arousal draw moves pitch, loudness, rate and voice quality together, so that
  # a calm angry take looks like a happy one and an animated sad take like a neutral one.
  arousal = rng.normal(0.0, 1.0)
  f0_st = mix("f0") + 1.2 * arousal + rng.normal(0.0, 1.2)
  return Prosody(
      f0_hz=spk.f0_hz * 2.0 ** (f0_st / 12.0),
      f0_range_st=mix("rng") * np.exp(rng.normal(0.1 * arousal, 0.3)),
      declination_st=mix("decl") * np.exp(rng.normal(0.0, 0.3)),
      final_rise_st=float(rng.random() < e["rise"]) * rng.uniform(2.0, 5.0),
      level_db=mix("level") + spk.level_db + 2.0 * arousal + rng.normal(0.0, 2.5),
      rate_sps=mix("rate") * spk.rate_scale * np.exp(0.06 * arousal + rng.normal(0.0, 0.12)),
      pause_prob=e["pause"],
      open_quotient=float(np.clip(mix("oq") + spk.open_quotient - 0.03 * arousal
                                  + rng.normal(0.0, 0.04), 0.3, 0.85)),
      tilt=float(np.clip(mix("tilt") + spk.tilt - 0.05 * arousal + rng.normal(0.0, 0.12),
                         0.0, 0.9)),
      jitter=mix("jit") * spk.jitter * np.exp(rng.normal(0.0, 0.3)),
      shimmer_db=mix("shim") * np.exp(rng.normal(0.0, 0.3)),
      breath_db=mix("breath") + spk.breath_db + rng.normal(0.0, 3.0),
      consonant_db=mix("cons") + rng.normal(0.0, 3.0),
      f1_scale=mix("f1") * np.exp(rng.normal(0.0, 0.03)),
      f23_scale=mix("f23") * np.exp(rng.normal(0.0, 0.02)),
      bw_scale=mix("bw") * np.exp(rng.normal(0.0, 0.1)),
      formant_scale=spk.formant_scale)


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _layout(rng: np.random.Generator, n: int, sr: int, rate: float, pause_prob: float):
  """Syllable timing: per-sample segment kind (0 gap, 1 onset, 2 nucleus), syllable, position."""
  lead = int(min(rng.uniform(0.04, 0.15) * sr, n // 4))
  tail = int(min(rng.uniform(0.04, 0.15) * sr, n // 4))
  avail = n - lead - tail
  m = int(np.ceil(avail / sr * rate * 1.5)) + 3
  period = np.exp(rng.normal(0.0, 0.25, m)) / rate
  onset = np.where(rng.random(m) < 0.6, rng.uniform(0.15, 0.3, m), 0.0)
  gap = np.where(rng.random(m) < 0.45, rng.uniform(0.1, 0.3, m), rng.uniform(0.0, 0.06, m))
  pause = np.where(rng.random(m) < pause_prob, rng.uniform(0.15, 0.4, m), 0.0)
  dur = np.stack([onset * period, (1.0 - onset - gap) * period, gap * period + pause], 1)
  # Take the syllable count whose natural length is closest to the time available, then
  # stretch it to fit exactly (the last syllable has no trailing gap).
  ends = np.cumsum(dur.sum(1)) - dur[:, 2]
  k = int(np.argmin(np.abs(ends - avail / sr))) + 1
  dur = dur[:k].copy()
  dur[-1, 2] = 0.0
  edges = lead + np.round(np.cumsum(dur.ravel()) * (avail / dur.sum())).astype(np.int64)
  edges[-1] = lead + avail
  edges = np.concatenate([[0, lead], edges, [n]])
  lengths = np.diff(edges)
  kinds = np.concatenate([[0], np.tile([1, 2, 0], k), [0]])
  syl_of_seg = np.concatenate([[-1], np.repeat(np.arange(k), 3), [-1]])
  seg = np.repeat(np.arange(len(lengths)), lengths)
  seg_len = lengths[seg]
  offset = np.arange(n) - edges[:-1][seg]
  nucleus = np.flatnonzero(kinds == 2)
  return dict(kind=kinds[seg], syl=syl_of_seg[seg], offset=offset, seg_len=seg_len,
              num_syllables=k, nucleus_start=edges[nucleus], nucleus_end=edges[nucleus + 1],
              lead=lead, avail=avail)


def _f0_contour(rng, lay, v: np.ndarray, p: Prosody, sr: int):
  """f0 (Hz) at voiced samples `v`, and per-syllable accents (st).

  Declination over the utterance, a rise-fall accent on each syllable nucleus, a final
  rise on the last syllable when drawn, and slow random drift.
  """
  k = lay["num_syllables"]
  t = np.clip((v - lay["lead"]) / max(lay["avail"], 1), 0.0, 1.0)
  accented = rng.random(k) < 0.5
  accent = p.f0_range_st * np.where(accented, rng.uniform(0.5, 1.2, k), rng.uniform(-0.15, 0.25, k))
  skew = rng.uniform(0.7, 1.4)
  pos = lay["offset"][v] / lay["seg_len"][v]
  syl = lay["syl"][v]
  step = int(0.25 * sr)
  knots = np.arange(0, v[-1] + 2 * step, step)
  drift = np.interp(v, knots, rng.normal(0.0, 1.2, len(knots)))
  st = (p.declination_st * (0.5 - t) + accent[syl] * np.sin(np.pi * pos ** skew)
        + np.where(syl == k - 1, p.final_rise_st * pos, 0.0) + drift)
  return np.clip(p.f0_hz * np.exp(st * (np.log(2.0) / 12.0)), 50.0, 600.0), accent


def _glottal_source(rng, f0: np.ndarray, p: Prosody, sr: int):
  """Rosenberg glottal-flow derivative with per-cycle jitter and shimmer; also the flow."""
  cycle = np.floor(np.cumsum(f0) / sr).astype(np.int64)
  jitter = 1.0 + p.jitter * rng.standard_normal(cycle[-1] + 1)
  phase = np.cumsum(f0 * jitter[cycle]) / sr
  cycle = np.floor(phase).astype(np.int64)
  frac = phase - cycle
  shimmer = 10.0 ** (p.shimmer_db * rng.standard_normal(cycle[-1] + 1) / 20.0)
  oq = p.open_quotient
  tp, tn = 0.6 * oq, 0.4 * oq
  flow = np.zeros_like(frac)
  opening, closing = frac < tp, (frac >= tp) & (frac < oq)
  flow[opening] = 0.5 - 0.5 * np.cos(np.pi / tp * frac[opening])
  flow[closing] = np.cos(0.5 * np.pi / tn * (frac[closing] - tp))
  # The derivative models lip radiation; the abrupt closure carries the high frequencies.
  deriv = np.diff(flow, prepend=flow[0]) * shimmer[cycle]
  return deriv, flow


def _all_pole_formants(freqs: np.ndarray, bws: np.ndarray, sr: int):
  """Klatt resonators as one all-pole polynomial per frame: (gain [F], denominator [F, 2R+1])."""
  r = np.exp(-np.pi * bws / sr)
  a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr), r * r
  den = np.ones(freqs.shape[:1] + (1,))
  for j in range(freqs.shape[1]):
    sec = np.stack([np.ones_like(a1[:, j]), a1[:, j], a2[:, j]], 1)
    out = np.zeros((den.shape[0], den.shape[1] + 2))
    for i in range(3):
      out[:, i:i + den.shape[1]] += den * sec[:, i:i + 1]
    den = out
  gain = np.prod(1.0 + a1 + a2, axis=1)  # unity gain at DC, per resonator
  return gain, den


def _time_varying_filter(x: np.ndarray, gain: np.ndarray, den: np.ndarray, hop: int,
                         ring: int) -> np.ndarray:
  """Filters `x` with all-pole coefficients (`gain`, `den` per frame) updated every `hop` samples.

  The state carried between frames is the past outputs (direct form I), converted to
  each frame's direct-form-II-transposed `zi`, so coefficient changes do not click.
  Runs of frames with equal coefficients go through one call; frames with no input for
  `ring` frames (the resonances have died out) are skipped.
  """
  order = den.shape[1] - 1
  num_frames = den.shape[0]
  chex.assert_shape(gain, (num_frames,))
  chex.assert_rank(x, 1)
  padded = np.zeros(num_frames * hop)
  padded[:len(x)] = x
  has_input = padded.reshape(num_frames, hop).any(axis=1)
  active = np.convolve(has_input, np.ones(ring + 1))[:num_frames] > 0
  same = np.all(den[1:] == den[:-1], axis=1) & (gain[1:] == gain[:-1])
  starts = active & ~np.concatenate([[False], active[:-1] & same])
  breaks = np.concatenate([np.flatnonzero(starts | ~active), [num_frames]])
  runs = np.flatnonzero(starts)
  ends = breaks[np.searchsorted(breaks, runs, side="right")]
  fresh = (runs == 0) | ~active[np.maximum(runs - 1, 0)]
  # DF2T state of an all-pole filter from its past outputs: zi[k] = -sum_m a[k+1+m] y[-1-m].
  idx = np.arange(order)[:, None] + np.arange(order)[None, :] + 1
  state_maps = -den[runs][:, np.minimum(idx, order)] * (idx <= order)
  out = np.zeros_like(padded)
  last = np.zeros(order)  # y[-1], y[-2], ...
  for r, (a, b) in enumerate(zip(runs.tolist(), ends.tolist())):
    if fresh[r]:
      last = np.zeros(order)
    y, _ = scipy.signal.lfilter(gain[a:a + 1], den[a], padded[a * hop:b * hop],
                                zi=state_maps[r] @ last)
    out[a * hop:b * hop] = y
    last = y[:-order - 1:-1]
  return out[:len(x)]


def fricative_filters(sr: int) -> tuple[np.ndarray, ...]:
  """Band-pass SOS filters for the consonant noise colours (s, sh, f/h) at rate `sr`."""
  nyq = 0.5 * sr
  bands = ((3500.0, 7000.0), (2000.0, 4500.0), (800.0, 6000.0))
  return tuple(scipy.signal.butter(2, [min(lo, 0.8 * nyq) / nyq, min(hi, 0.95 * nyq) / nyq],
                                   btype="band", output="sos") for lo, hi in bands)


def _static_formants(scale: float, sr: int) -> np.ndarray:
  """SOS of the fixed upper formants (F4, F5) for a vocal tract scaled by `scale`."""
  rows = []
  for freq, bw in _HIGH_FORMANTS:
    f = freq * scale
    if f < 0.45 * sr:
      r = np.exp(-np.pi * bw / sr)
      a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * f / sr), r * r
      rows.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
  return np.asarray(rows).reshape(-1, 6)


def synthesize(rng: np.random.Generator, p: Prosody, num_samples: int, sr: int,
               snr_db: float, fricatives: tuple[np.ndarray, ...]) -> np.ndarray:
  """One utterance's waveform (float32, [num_samples]) at the level set by `p.level_db`."""
  lay = _layout(rng, num_samples, sr, p.rate_sps, p.pause_prob)
  v = np.flatnonzero(lay["kind"] == 2)  # voiced samples; all source work happens there
  f0, accent = _f0_contour(rng, lay, v, p, sr)
  deriv, flow = _glottal_source(rng, f0, p, sr)
  env = _voicing_envelope(rng, lay, v, accent, sr)
  deriv /= np.sqrt(np.mean(deriv ** 2)) + 1e-12
  breath = 10.0 ** (p.breath_db / 20.0) * rng.standard_normal(len(v)) * (0.3 + flow)
  source = np.zeros(num_samples)
  source[v] = (deriv + breath) * env
  source = scipy.signal.lfilter([1.0 - p.tilt], [1.0, -p.tilt], source)

  hop = max(1, int(round(_FRAME_SECONDS * sr)))
  freqs = _formant_track(rng, lay, p, num_samples, hop, sr)
  bws = np.broadcast_to(np.asarray(_FORMANT_BW) * p.bw_scale, freqs.shape)
  gain, den = _all_pole_formants(freqs, bws, sr)
  # 20 ms is >= 4 decay time constants of the narrowest (~65 Hz) resonance: below -35 dB.
  speech = _time_varying_filter(source, gain, den, hop, ring=-(-int(0.02 * sr) // hop))
  high = _static_formants(p.formant_scale, sr)
  if len(high):
    speech = scipy.signal.sosfilt(high, speech)

  active = v[env > 0.5 * env.max()]
  speech_rms = _REF_RMS * 10.0 ** (p.level_db / 20.0)
  speech *= speech_rms / (np.sqrt(np.mean(speech[active] ** 2)) + 1e-12)
  _add_consonants(rng, speech, lay, p, speech_rms, fricatives)

  # Background: coloured noise at the drawn SNR relative to active speech.
  pole = rng.uniform(0.7, 0.98)
  noise = scipy.signal.lfilter([1.0], [1.0, -pole], rng.standard_normal(num_samples))
  noise *= speech_rms * 10.0 ** (-snr_db / 20.0) / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
  wave = speech + noise
  peak = np.max(np.abs(wave))
  if peak > _PEAK_LIMIT:  # rare: only the loudest takes are scaled, the rest keep their level
    wave *= _PEAK_LIMIT / peak
  wave = wave.astype(np.float32)
  chex.assert_shape(wave, (num_samples,))
  return wave


def _voicing_envelope(rng, lay, v: np.ndarray, accent: np.ndarray, sr: int) -> np.ndarray:
  """The voiced samples' envelope: smooth attack/release per nucleus, syllable stress that
  follows the pitch accent, and loudness falling over the utterance."""
  off, seg_len = lay["offset"][v], lay["seg_len"][v]
  attack = np.minimum(0.025 * sr, 0.3 * seg_len)
  release = np.minimum(0.05 * sr, 0.4 * seg_len)
  env = _smoothstep(off / attack) * _smoothstep((seg_len - off) / release)
  stress_db = 0.8 * accent + rng.normal(0.0, 2.0, lay["num_syllables"])
  t = np.clip((v - lay["lead"]) / max(lay["avail"], 1), 0.0, 1.0)
  return env * np.exp((stress_db[lay["syl"][v]] - 3.0 * t) * (np.log(10.0) / 20.0))


def _formant_track(rng, lay, p: Prosody, num_samples: int, hop: int, sr: int) -> np.ndarray:
  """F1-F3 per frame of `hop` samples [frames, 3]: each nucleus glides from one vowel to
  another, gaps coarticulate."""
  k = lay["num_syllables"]
  vowels = np.asarray(_VOWELS)
  start_v = rng.integers(0, len(vowels), k)
  end_v = np.where(rng.random(k) < 0.5, start_v, rng.integers(0, len(vowels), k))
  times = np.stack([lay["nucleus_start"], lay["nucleus_end"]], 1).ravel().astype(float)
  # One random shift per syllable, so a steady vowel gives runs of equal coefficients.
  targets = np.stack([vowels[start_v], vowels[end_v]], 1) * np.exp(rng.normal(0.0, 0.04, (k, 1, 3)))
  targets = targets.reshape(-1, 3)
  centres = (np.arange(-(-num_samples // hop)) + 0.5) * hop
  freqs = np.stack([np.interp(centres, times, targets[:, j]) for j in range(3)], 1)
  freqs *= p.formant_scale * np.array([p.f1_scale, p.f23_scale, p.f23_scale])
  return np.minimum(freqs, 0.45 * sr)


def _add_consonants(rng, speech: np.ndarray, lay, p: Prosody, speech_rms: float,
                    fricatives: tuple[np.ndarray, ...]) -> None:
  """Adds the consonant onsets to `speech` in place: band-limited noise bursts, one of three
  fricative colours per syllable."""
  o = np.flatnonzero(lay["kind"] == 1)
  if not len(o):
    return
  k = lay["num_syllables"]
  colour = rng.integers(0, len(fricatives), k)[lay["syl"][o]]
  level = 10.0 ** ((p.consonant_db + rng.normal(0.0, 3.0, k)) / 20.0) * speech_rms
  burst = np.zeros(len(o))
  for c, sos in enumerate(fricatives):
    where = np.flatnonzero(colour == c)
    if len(where):
      noise = scipy.signal.sosfilt(sos, rng.standard_normal(len(where)))
      burst[where] = noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
  pos = lay["offset"][o] / lay["seg_len"][o]
  speech[o] += burst * level[lay["syl"][o]] * np.sin(np.pi * pos) ** 0.7


def make_transcript(rng: np.random.Generator, label: int, emotion_prob: float) -> str:
  """An emotional sentence of `label` with probability `emotion_prob`, else a shared one."""
  emotional = rng.random() < emotion_prob
  own = EMOTION_SENTENCES[label][rng.integers(len(EMOTION_SENTENCES[label]))]
  shared = SHARED_SENTENCES[rng.integers(len(SHARED_SENTENCES))]
  return own if emotional else shared


def _check(cfg_name: str, ok: bool, fix: str):
  if not ok:
    raise ValueError(f"config.corpus.{cfg_name}: {fix}")


def build(cfg) -> Corpus:
  """Builds the synthetic corpus from `cfg` (ConfigDict or dict), reading with defaults:

  seed 0, num_speakers 8, utterances_per_speaker 48, sample_rate 16000, min_seconds 1.0,
  max_seconds 4.0, transcript_emotion_prob 0.4, noise_snr_db (15.0, 35.0).
  """
  seed = int(cfg.get("seed", 0))
  num_speakers = int(cfg.get("num_speakers", 8))
  per_speaker = int(cfg.get("utterances_per_speaker", 48))
  sr = int(cfg.get("sample_rate", 16000))
  min_s = float(cfg.get("min_seconds", 1.0))
  max_s = float(cfg.get("max_seconds", 4.0))
  emotion_prob = float(cfg.get("transcript_emotion_prob", 0.4))
  snr = tuple(float(v) for v in cfg.get("noise_snr_db", (15.0, 35.0)))
  _check("seed", seed >= 0, f"got {seed}; use a non-negative integer")
  _check("num_speakers", num_speakers >= 1, f"got {num_speakers}; use at least 1 (8 for LOSO)")
  _check("utterances_per_speaker", per_speaker >= 1, f"got {per_speaker}; use at least 1")
  _check("sample_rate", sr >= 8000, f"got {sr}; use at least 8000 Hz (16000 is the default)")
  _check("min_seconds", 0.3 <= min_s <= max_s,
         f"need 0.3 <= min_seconds <= max_seconds, got {min_s} and {max_s}")
  _check("transcript_emotion_prob", 0.0 <= emotion_prob <= 1.0, f"got {emotion_prob}; use [0, 1]")
  _check("noise_snr_db", len(snr) == 2 and snr[0] <= snr[1],
         f"got {snr}; give a (low, high) range in dB")

  fricatives = fricative_filters(sr)
  utterances, waveforms = [], {}
  for s in range(num_speakers):
    spk = make_speaker(seed, s)
    for i in range(per_speaker):
      text_rng = _rng(seed, _TEXT_STREAM, s, i)
      label = int(text_rng.choice(len(CLASS_NAMES), p=CLASS_PROBS))
      transcript = make_transcript(text_rng, label, emotion_prob)
      rng = _rng(seed, _AUDIO_STREAM, s, i)
      num_samples = int(np.clip(round(rng.uniform(min_s, max_s) * sr),
                                np.ceil(min_s * sr), np.floor(max_s * sr)))
      prosody = sample_prosody(rng, label, spk)
      wave = synthesize(rng, prosody, num_samples, sr, rng.uniform(*snr), fricatives)
      uid = f"{spk.name}_{i:04d}"
      waveforms[uid] = wave
      utterances.append(Utterance(
          id=uid, speaker=spk.name, label=label, path="", session=spk.session,
          transcript=transcript, duration=num_samples / sr, gender=spk.gender))
  return Corpus(name="synthetic", class_names=CLASS_NAMES, sample_rate=sr,
                utterances=utterances, waveforms=waveforms)
