"""MLKD (Liu et al., arXiv 2312.13556) on IEMOCAP, 4 classes, with noisy speech.

    python -m jaxser.train --config configs/mlkd_iemocap.py \\
        --config.corpus.manual_dir=/data/IEMOCAP_full_release \\
        --config.stages.teacher.model.checkpoint=/models/wav2vec2-base

The teacher fine-tunes a wav2vec2-base checkpoint directory (or hub name in the local HF
cache); the students have 6 layers, initialised from its layers 2, 4, ..., 12. Noise:
the built-in generators plus, with `--config.stages.student_alone.noise.dir`,
`--config.stages.mlkd.noise.dir` and `--config.eval_noise.dir`, the recordings of a
NOISEX-92-style folder. Leave-one-session-out (5 folds), 4 s of audio, batch 16, 30
epochs (ours). The cached hidden states are large on IEMOCAP (~5.5k utterances × 13
layers × 200 frames × 768, fp16: ~22 GB) and the tf.data pipeline holds teacher caches in
memory: budget the host RAM for it. Stages and settings: configs/mlkd_emodb.py.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "mlkd_emodb", os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlkd_emodb.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
  corpus = dict(name="iemocap", manual_dir="/path/to/IEMOCAP_full_release", sample_rate=16000,
                classes="4class", subset="all")
  return _base.build("mlkd_iemocap", corpus, dict(name="session_kfold", max_folds=0),
                     teacher=dict(checkpoint="facebook/wav2vec2-base", preset=""),
                     student=dict(preset="wav2vec2-base", num_hidden_layers=6),
                     student_layers=(2, 4, 6, 8, 10, 12), max_seconds=4.0, noise_dir="",
                     epochs=30, batch_size=16)
