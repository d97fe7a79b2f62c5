"""MLKD (Liu et al., arXiv 2312.13556) on IEMOCAP, 4 classes, leave-one-speaker-out, noisy speech.

    python -m jaxser.train --config configs/mlkd_iemocap.py \\
        --config.corpus.manual_dir=/data/IEMOCAP_full_release \\
        --config.stages.teacher.model.checkpoint=/models/wav2vec2-base

The paper's setting: the teacher fine-tunes wav2vec2-base (a checkpoint directory or hub
name in the local HF cache) on clean speech; the students have 6 layers initialised from
its layers 2, 4, ..., 12; α 0.7, T 7; AdamW lr 5e-5, batch 8; 10 leave-one-speaker-out
folds; SNRs 0-20 dB. Noise: the built-in white / pink / brown / babble, or the paper's
five recorded types: give a NOISEX-92-style folder and its file names, e.g.
`--config.stages.student_alone.noise.dir=/data/noisex --config.stages.mlkd.noise.dir=...
--config.eval_noise.dir=...` with `noise.types=()` (every noise the folder and the
generators offer). Not from the paper: 4 s of audio (longer utterances are cut), 30
epochs, teacher lr 5e-5 too. The cached hidden states are large on IEMOCAP (~5.5k
utterances x 13 layers x 200 frames x 768, fp16: ~22 GB) and the tf.data pipeline holds
teacher caches in memory: budget the host RAM for it. Stages: configs/mlkd_emodb.py.
"""

from jaxser.config_utils import load_sibling

_base = load_sibling(__file__, "mlkd_emodb")


def get_config():
  corpus = dict(name="iemocap", manual_dir="/path/to/IEMOCAP_full_release", sample_rate=16000,
                classes="4class", subset="all")
  head = dict(name="w2v2_classifier", projector_size=128, dropout=0.1, mask_padding=True)
  return _base.build("mlkd_iemocap", corpus,
                     dict(name="leave_one_speaker_out", valid_speakers=1, max_folds=0),
                     teacher=dict(head, checkpoint="facebook/wav2vec2-base", preset=""),
                     student=dict(head, preset="wav2vec2-base", num_hidden_layers=6),
                     student_layers=(2, 4, 6, 8, 10, 12),
                     waveform=dict(kind="waveform", max_seconds=4.0, normalize=True),
                     noise_dir="", train=dict(optimizer="adamw", learning_rate=5e-5,
                                              epochs=30, batch_size=8),
                     teacher_train=dict(learning_rate=5e-5))
