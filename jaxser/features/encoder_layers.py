"""Frozen-encoder features: every Whisper layer's mean over the valid frames of a clip, or
over the frames of each window of a clip (the encoder seeing the whole clip), or the hidden
state entering one layer, frame by frame (the frozen lower layers of a fine-tuned encoder).

What is frozen needs the encoder once per utterance, not once per epoch and fold, so
`pooled_layers` / `window_layers` / `layer_states` run it in batches and cache each clip's
array on disk as `<cache_dir>/<key[:2]>/<key>.npy`, key = sha256 of the encoder's weights,
the padding mode, the windows or layer and the float32 waveform bytes (files written to a
temporary name, then renamed).
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxser import io_utils, profile
from jaxser.features import frontend, whisper_mel
from jaxser.models import whisper


@functools.lru_cache(maxsize=2)
def _weights(checkpoint: str):
  """(config, params on the device, sha256 of the weights) of a Whisper checkpoint."""
  from jaxser.models import pretrained
  config, params, _ = pretrained.load_whisper(checkpoint)
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.asarray(leaf).tobytes())
  # Params are an argument of the jitted functions, not constants baked into their HLO.
  return config, jax.tree.map(jnp.asarray, params), digest.hexdigest()


@functools.lru_cache(maxsize=2)
def _encoder(checkpoint: str):
  """(jitted mel, frames -> [B, L + 1, D] means, weights digest) of a Whisper checkpoint."""
  config, device_params, digest = _weights(checkpoint)
  model = whisper.WhisperEncoder(config)

  @functools.partial(jax.jit, static_argnums=4)
  def run(p, mel, frames, weights, attend_all):
    """[B, W, L + 1, D]: hidden states averaged with `weights` [B, W, T'] (rows sum to 1)."""
    out = model.apply({"params": p}, mel, None if attend_all else frames)
    return jnp.einsum("bwt,bltd->bwld", weights, jnp.stack(out["hidden_states"], axis=1))

  return functools.partial(run, device_params), digest


@functools.lru_cache(maxsize=4)
def _prefix(checkpoint: str, layer: int, all_states: bool = False):
  """(jitted (waves [B, N], valid samples [B]) -> state entering `layer` [B, T', D], or with
  `all_states` states 0..`layer` [B, T', layer + 1, D], weights digest): the model's own
  path (log-mel in the graph, padded frames masked)."""
  config, device_params, digest = _weights(checkpoint)
  if not 1 <= layer <= config.encoder_layers:
    raise ValueError(f"input.layer={layer}: the encoder of {checkpoint} has layers "
                     f"0-{config.encoder_layers - 1}; give 1-{config.encoder_layers} (the "
                     "state entering that layer, the lower ones frozen)")
  model = whisper.WhisperEncoder(config)

  @jax.jit
  def run(p, waves, samples):
    mel = frontend.whisper_logmel(waves, config.num_mel_bins)
    states = model.apply({"params": p}, mel, samples // whisper_mel.HOP)["hidden_states"]
    return jnp.stack(states[:layer + 1], axis=2) if all_states else states[layer]

  return functools.partial(run, device_params), digest


def _frame_weights(windows, encoder_frames: int, valid: int) -> np.ndarray:
  """[W, T'] averaging weights of each (start, length) sample window over encoder frames
  (20 ms, 320 samples each), clipped to the clip's `valid` frames; at least one frame."""
  out = np.zeros((len(windows), encoder_frames), np.float32)
  for w, (start, length) in enumerate(windows):
    first = min(int(start) // (2 * whisper_mel.HOP), valid - 1)
    last = min(max(first + 1, (int(start) + int(length)) // (2 * whisper_mel.HOP)), valid)
    out[w, first:last] = 1.0 / (last - first)
  return out


def pooled_layers(waves: Sequence[np.ndarray], checkpoint: str, pad_to_30s: bool = True,
                  cache_dir: str | None = None, batch_size: int = 8) -> np.ndarray:
  """[N, L + 1, D] float32: per clip (16 kHz), the frame mean of every hidden state.

  `pad_to_30s`: Whisper's convention (the clip padded with silence to 30 s, every frame
  attending to all 1500); otherwise the clip alone, its positions sliced. Means cover the
  clip's own frames either way.
  """
  whole = [[(0, 1 << 40)] for _ in waves]  # every valid frame, as before windows existed
  return np.stack([m[0] for m in _window_means(waves, whole, checkpoint, pad_to_30s, cache_dir,
                                               batch_size, "whisper-layers")])


def window_layers(waves: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[int, int]]],
                  checkpoint: str, pad_to_30s: bool = True, cache_dir: str | None = None,
                  batch_size: int = 8) -> list[np.ndarray]:
  """Per clip, [W, L + 1, D] float32: the encoder run once on the whole clip, every hidden
  state averaged over the frames of each of the clip's `windows` ((start, length) in
  samples): a window's features in the context of its clip."""
  return _window_means(waves, windows, checkpoint, pad_to_30s, cache_dir, batch_size,
                       "whisper-window-layers")


def layer_states(waves: Sequence[np.ndarray], num_samples: int, checkpoint: str, layer: int,
                 cache_dir: str | None = None, batch_size: int = 8,
                 all_states: bool = False) -> list[np.ndarray]:
  """Per clip, [T'_valid, D] float32: the hidden state entering layer `layer` (1-based count
  of frozen layers) of the clip cut or zero-padded to `num_samples` as the `waveform` input
  gives it, exactly as `WhisperClassifier(frontend="whisper_logmel")` computes it on a batch
  of such rows (so a model on these states is that model with its lowest layers frozen).
  `all_states`: [T'_valid, layer + 1, D], HF's hidden states 0..`layer` (the last one after
  the final layer norm when `layer` is the encoder's depth)."""
  run, digest = _prefix(checkpoint, layer, all_states)
  tag = (f"whisper-states|{digest}|layer={layer}|samples={num_samples}|"
         + ("all|" if all_states else "")).encode()
  cut = [np.ascontiguousarray(w[:num_samples], np.float32) for w in waves]
  keys = [hashlib.sha256(tag + w.tobytes()).hexdigest() for w in cut]

  def compute(rows):
    batch = np.zeros((batch_size, num_samples), np.float32)  # full batches: one compilation
    samples = np.full(batch_size, num_samples, np.int32)
    for j, i in enumerate(rows):
      batch[j, :len(cut[i])] = cut[i]
      samples[j] = max(len(cut[i]), whisper_mel.HOP)
    states = np.asarray(run(jnp.asarray(batch), jnp.asarray(samples)))
    return [states[j, :int(whisper.encoder_frames(samples[j] // whisper_mel.HOP))]
            for j in range(len(rows))]

  out = _per_clip(keys, cache_dir, compute, batch_size, f"Whisper layers 0-{layer - 1}")
  return [np.asarray(o, np.float32) for o in out]


def depth(checkpoint: str) -> int:
  """Number of encoder layers of a Whisper checkpoint."""
  return int(_weights(checkpoint)[0].encoder_layers)


def prefix_size(checkpoint: str, layer: int, num_samples: int,
                all_states: bool = False) -> tuple[int, float]:
  """(weights, multiply-accumulates of one clip of `num_samples`) of what `layer_states`
  runs: the convolutions, positions and layers below `layer` (and the final layer norm when
  `all_states` reaches the top): the part of a model on cached states that its input holds."""
  run, _ = _prefix(checkpoint, layer, all_states)
  config, params, _ = _weights(checkpoint)
  top = all_states and layer == config.encoder_layers
  used = {k: v for k, v in params.items() if k != "layer_norm" or top}
  used["layers"] = {k: v for k, v in params["layers"].items() if int(k) < layer}
  compiled = run.func.lower(run.args[0], jnp.zeros((1, num_samples), jnp.float32),
                            jnp.full((1,), num_samples, jnp.int32)).compile()
  return sum(int(np.size(v)) for v in jax.tree.leaves(used)), profile.macs_of(compiled)


def _window_means(waves, windows, checkpoint, pad_to_30s, cache_dir, batch_size, kind):
  run, digest = _encoder(checkpoint)
  tag = f"{kind}|{digest}|pad30={bool(pad_to_30s)}|".encode()
  # Whole-clip means keep their keys of before windows existed (cached files stay valid).
  spans = [b"" if kind == "whisper-layers" else repr([tuple(map(int, x)) for x in ws]).encode()
           for ws in windows]
  keys = [hashlib.sha256(tag + span + np.ascontiguousarray(w, np.float32).tobytes()).hexdigest()
          for w, span in zip(waves, spans)]
  most = max((len(ws) for ws in windows), default=1)

  def compute(rows):
    mels = [whisper_mel.log_mel(waves[i], pad_to_30s=pad_to_30s) for i in rows]
    width = max(len(m) for m in mels)
    width += width % 2  # even, so the strided conv's frames cover it
    # Full batches (blank rows at the end) keep one compilation per clip length.
    batch = np.zeros((batch_size, width, mels[0].shape[1]), np.float32)
    frames = np.full(batch_size, width, np.int32)
    weights = np.zeros((batch_size, most, width // 2), np.float32)
    weights[:, :, 0] = 1.0  # blank rows and windows: any valid average
    for j, (i, m) in enumerate(zip(rows, mels)):
      batch[j, :len(m)] = m
      frames[j] = max(min(len(waves[i]) // whisper_mel.HOP, len(m)), 1)
      valid = int(whisper.encoder_frames(frames[j]))
      weights[j, :len(windows[i])] = _frame_weights(windows[i], width // 2, valid)
    means = np.asarray(run(jnp.asarray(batch), jnp.asarray(frames), jnp.asarray(weights),
                           pad_to_30s))
    # Whole-clip means are stored [L + 1, D], as before windows existed.
    return [means[j, 0] if kind == "whisper-layers" else means[j, :len(windows[i])]
            for j, i in enumerate(rows)]

  out = _per_clip(keys, cache_dir, compute, batch_size, "Whisper encoder layers")
  return [np.asarray(o, np.float32).reshape((-1,) + np.shape(o)[-2:]) for o in out]


def _per_clip(keys, cache_dir, compute, batch_size, desc) -> list[np.ndarray]:
  """Each clip's array: `<cache_dir>/<key[:2]>/<key>.npy` when cached, else computed by
  `compute(indices)` (arrays of up to `batch_size` clips, in order) and cached (atomic)."""
  paths = [os.path.join(cache_dir, k[:2], k + ".npy") if cache_dir else None for k in keys]
  out = [np.load(p) if p and os.path.exists(p) else None for p in paths]
  todo = [i for i, o in enumerate(out) if o is None]
  for start in tqdm(range(0, len(todo), batch_size), desc=desc, disable=not todo, leave=False):
    rows = todo[start:start + batch_size]
    for i, array in zip(rows, compute(rows)):
      out[i] = array
      if paths[i]:
        with io_utils.atomic_path(paths[i]) as tmp, open(tmp, "wb") as f:
          np.save(f, array)
  return out
