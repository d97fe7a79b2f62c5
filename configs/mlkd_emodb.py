"""MLKD (Liu et al., arXiv 2312.13556) on EmoDB, leave-one-speaker-out, with noisy speech.

    python -m jaxser.train --config configs/mlkd_emodb.py
    scripts/mlkd_emodb.sh                      # all 10 folds, in parallel processes

Stages: `teacher` (a wav2vec2-shaped classifier, `small-wav2vec2`: 4 layers of width 128,
trained from scratch on clean speech, since no pretrained weights can be downloaded here;
its logits and all hidden states on the clean input are cached, fp16), `student_alone`
(2 layers, initialised from the teacher's layers 2 and 4, trained with CE on noisy speech:
the paper's student without supervision) and `mlkd` (the same student with α·KL(T) +
(1−α)·CE + the layer-2i → layer-i hidden-state MSE; α 0.7, T 7 as the paper).
Training noise: per utterance and epoch one of the built-in white / pink / brown / babble
noises at 0, 5, 10 or 20 dB (`stages.<name>.noise`; set `noise.dir` to a NOISEX-92-style
folder to add recordings). The students' best epoch is chosen on the validation speaker's
clips mixed with that noise (`noise.valid`, one fixed draw per clip); on clean validation
clips the epochs nearest the teacher-initialised start won (best epochs 1-6 of 40 in folds
0-1). Test: clean, and every test clip with each noise at each SNR (`eval_noise`, fixed
seeds): the report's noisy-speech tables. Audio: 2 s (this EmoDB copy
is 2.0 s clips), 16 kHz, normalised. Adam lr 5e-4 (teacher) / 1e-4 (students), batch 16,
40 epochs, best epoch by validation UA (ours: the paper trains on IEMOCAP).
"""

import os

import ml_collections

from jaxser.config_utils import stage_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "emodb"))

NOISES = ("white", "pink", "brown", "babble")
SNRS = (0.0, 5.0, 10.0, 20.0)


def build(name: str, corpus: dict, protocol: dict, *, teacher: dict, student: dict,
          student_layers: tuple, max_seconds: float, noise_dir: str, epochs: int,
          batch_size: int, optimizer: str = "adam", learning_rate: float = 1e-4,
          teacher_learning_rate: float = 5e-4, noises: tuple = NOISES):
  """The MLKD config: teacher, student alone on noisy speech, MLKD student."""
  c = ml_collections.ConfigDict()
  c.name = name
  c.seed = 42
  c.method = "mlkd"
  c.corpus = corpus
  c.protocol = protocol
  c.train = dict(
      optimizer=optimizer, learning_rate=learning_rate, weight_decay=0.0, schedule="constant",
      warmup_epochs=0, grad_clip_norm=1.0, grad_accum_steps=1, epochs=epochs,
      batch_size=batch_size, eval_batch_size=32, select="ua",
      plateau=dict(patience=0, factor=0.5, monitor="loss"),
      early_stopping=dict(patience=0, monitor="ua"))
  waveform = dict(kind="waveform", max_seconds=max_seconds, normalize=True)
  # valid: the best epoch is chosen on noisy validation clips, the students' condition.
  noise = dict(types=noises, snr_db=SNRS, dir=noise_dir, babble_k=4, valid=True)
  head = dict(name="w2v2_classifier", projector_size=128, dropout=0.1, mask_padding=True)
  student_model = dict(head, **student)
  init = dict(stage="teacher", layers=student_layers)
  c.stage_order = ("teacher", "student_alone", "mlkd")
  c.stages = ml_collections.ConfigDict({
      "teacher": dict(model=dict(head, output_hidden_states=True, **teacher), input=waveform,
                      loss="ce", loss_cfg=dict(label_smoothing=0.0), teachers=(),
                      outputs=("logits", "embedding", "hidden_states", "frame_mask"),
                      cache_fp16=True, train=stage_train(learning_rate=teacher_learning_rate)),
      "student_alone": dict(model=student_model, input=waveform, loss="ce",
                            loss_cfg=dict(label_smoothing=0.0), teachers=(), init_from=init,
                            noise=noise, train=stage_train()),
      "mlkd": dict(model=dict(student_model, output_hidden_states=True), input=waveform,
                   loss="mlkd", loss_cfg=dict(teacher="teacher", alpha=0.7, temperature=7.0,
                                              layer_map=()),
                   teachers=("teacher",), init_from=init, noise=noise, train=stage_train()),
  })
  c.eval_noise = dict(types=noises, snr_db=SNRS, dir=noise_dir, babble_k=4)
  c.report = dict(compare=(("mlkd", "student_alone"), ("teacher", "mlkd")), latency_repeats=100)
  return c


def get_config():
  return build("mlkd_emodb", dict(name="emodb", manual_dir=EMODB, sample_rate=16000),
               dict(name="leave_one_speaker_out", valid_speakers=1, max_folds=0),
               teacher=dict(preset="small-wav2vec2"),
               student=dict(preset="small-wav2vec2", num_hidden_layers=2),
               student_layers=(2, 4), max_seconds=2.0, noise_dir="", epochs=40, batch_size=16)
