"""Frozen-encoder features: every Whisper layer's mean over the valid frames of a clip.

A frozen teacher needs the encoder once per utterance, not once per epoch and fold, so
`pooled_layers` runs it in batches and caches each clip's [L + 1, D] array on disk as
`<cache_dir>/<key[:2]>/<key>.npy`, key = sha256 of the encoder's weights, the padding
mode and the float32 waveform bytes (files written to a temporary name, then renamed).
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

from jaxser import io_utils
from jaxser.features import whisper_mel
from jaxser.models import whisper


@functools.lru_cache(maxsize=2)
def _encoder(checkpoint: str):
  """(jitted mel, frames -> [B, L + 1, D] means, weights digest) of a Whisper checkpoint."""
  from jaxser import pretrained
  config, params, _ = pretrained.load_whisper(checkpoint)
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.asarray(leaf).tobytes())
  model = whisper.WhisperEncoder(config)

  @functools.partial(jax.jit, static_argnums=3)
  def run(p, mel, frames, attend_all):
    out = model.apply({"params": p}, mel, None if attend_all else frames)
    valid = jnp.arange(mel.shape[1] // 2)[None, :] < whisper.encoder_frames(frames)[:, None]
    w = valid[:, None, :, None] / jnp.sum(valid, axis=1)[:, None, None, None]
    return jnp.sum(jnp.stack(out["hidden_states"], axis=1) * w, axis=2)

  device_params = jax.tree.map(jnp.asarray, params)  # an argument, not baked into the HLO
  return functools.partial(run, device_params), digest.hexdigest()


def pooled_layers(waves: Sequence[np.ndarray], checkpoint: str, pad_to_30s: bool = True,
                  cache_dir: str | None = None, batch_size: int = 8) -> np.ndarray:
  """[N, L + 1, D] float32: per clip (16 kHz), the frame mean of every hidden state.

  `pad_to_30s`: Whisper's convention (the clip padded with silence to 30 s, every frame
  attending to all 1500); otherwise the clip alone, its positions sliced. Means cover the
  clip's own frames either way.
  """
  run, digest = _encoder(checkpoint)
  tag = f"whisper-layers|{digest}|pad30={bool(pad_to_30s)}|".encode()
  keys = [hashlib.sha256(tag + np.ascontiguousarray(w, np.float32).tobytes()).hexdigest()
          for w in waves]
  paths = [os.path.join(cache_dir, k[:2], k + ".npy") if cache_dir else None for k in keys]
  out = [np.load(p) if p and os.path.exists(p) else None for p in paths]
  todo = [i for i, o in enumerate(out) if o is None]
  for start in tqdm(range(0, len(todo), batch_size), desc="Whisper encoder layers",
                    disable=not todo, leave=False):
    rows = todo[start:start + batch_size]
    mels = [whisper_mel.log_mel(waves[i], pad_to_30s=pad_to_30s) for i in rows]
    width = max(len(m) for m in mels)
    width += width % 2  # even, so the strided conv's frames cover it
    # Full batches (blank rows at the end) keep one compilation per clip length.
    batch = np.zeros((batch_size, width, mels[0].shape[1]), np.float32)
    frames = np.full(batch_size, width, np.int32)
    for j, (i, m) in enumerate(zip(rows, mels)):
      batch[j, :len(m)] = m
      frames[j] = max(min(len(waves[i]) // whisper_mel.HOP, len(m)), 1)
    means = np.asarray(run(jnp.asarray(batch), jnp.asarray(frames), pad_to_30s))
    for j, i in enumerate(rows):
      out[i] = means[j]
      if paths[i]:
        with io_utils.atomic_path(paths[i]) as tmp, open(tmp, "wb") as f:
          np.save(f, means[j])
  return np.stack(out).astype(np.float32)
