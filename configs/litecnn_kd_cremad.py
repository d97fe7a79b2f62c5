"""LiteCNN KD on CREMA-D (Pate & Vayeda 2025): the paper's protocol and hyper-parameters.

Teacher: a wav2vec2 classifier (HF Wav2Vec2ForSequenceClassification shape: encoder ->
projector 256 -> mean pooling -> classifier; encoder dropout 0.1) fine-tuned from
`facebook/wav2vec2-base` on each fold's training part; its logits are cached. Students:
LiteCNN (~1.08 M parameters) on 1 s of 16 kHz zero-mean unit-variance waveform, trained
alone (CE) and with KD (α·CE + (1−α)·T²·KL, α = 0.5, T = 2). Adam lr 1e-4, weight decay
1e-5, ReduceLROnPlateau (patience 5, factor 0.5) on validation loss, batch 32, up to 200
epochs with early stopping (patience 20), seed 42; the best epoch by validation loss is
kept. Paper's Table 1 (validation accuracy): teacher 0.624, student alone 0.389, KD
student 0.455.

    python -m jaxser.train --config configs/litecnn_kd_cremad.py \\
        --config.corpus.manual_dir=/data/CREMA-D

`corpus.manual_dir` holds the release's AudioWAV folder. The teacher checkpoint is a
hub name in the local HF cache or a model directory: --config.stages.teacher.model.
checkpoint=/models/wav2vec2-base (a *ForSequenceClassification checkpoint brings its
projector / classifier too). Loading pretrained weights into a stage needs the
`load_pretrained` hook in trainer.create_state (see jaxser/models/w2v2_classifier.py).

Split: the paper's stratified random 80/20, which is SPEAKER-DEPENDENT (the same actors
in train and test; the report says so); 10% of the 80% validates. The speaker-disjoint
option is a variant of this file: `--config configs/litecnn_kd_cremad.py:speaker_kfold`
(5 folds of disjoint actors, 9 validation actors per fold; --config.protocol.num_folds
and --config.protocol.valid_speakers change them).

Where this differs from the authors' code (shripadpate20/SpeechEmotionDistill): their
teacher was fine-tuned with lr 1e-5 on the encoder and 1e-4 on the heads (one lr here),
called without attention mask on zero-padded 1 s clips (`mask_padding=False` here, HF's
advice for group-norm wav2vec2-base too) and without waveform normalisation; their
student code weights the KL by α = 0.7 with T = 3 (see jaxser/methods/litecnn_kd.py).
HF would also apply SpecAugment time masking while fine-tuning (mask_time_prob 0.05);
jaxser's encoder applies none.
"""

import ml_collections

from jaxser.config_utils import load_sibling, stage_train

_emodb = load_sibling(__file__, "litecnn_kd_emodb")

PROTOCOLS = {
    "stratified_random": dict(name="stratified_random", test_fraction=0.2, valid_fraction=0.1,
                              repeats=1, max_folds=0),
    "speaker_kfold": dict(name="speaker_kfold", num_folds=5, valid_speakers=9, max_folds=0),
}


def get_config(protocol: str = "stratified_random"):
  if protocol not in PROTOCOLS:
    raise ValueError(f"configs/litecnn_kd_cremad.py:{protocol}: choose stratified_random "
                     "(the paper's, default) or speaker_kfold")
  # configs/litecnn_kd_emodb.py with the paper's corpus, split, teacher and whole-clip
  # inputs; its seed, training (Adam, plateau and early stopping on validation loss) and
  # students are the paper's already.
  c = _emodb.get_config()
  c.name = "litecnn_kd_cremad" + ("" if protocol == "stratified_random" else f"_{protocol}")
  c.corpus = dict(name="cremad", manual_dir="/path/to/CREMA-D", sample_rate=16000)
  c.protocol = PROTOCOLS[protocol]
  waveform = dict(kind="waveform", max_seconds=1.0, normalize=True)
  students = {s: dict(c.stages[s].to_dict(), input=waveform, train=stage_train())
              for s in ("student_alone", "student_kd")}
  c.stage_order = ("teacher", "student_alone", "student_kd")
  c.stages = ml_collections.ConfigDict(dict(students, teacher=dict(
      model=dict(name="w2v2_classifier", checkpoint="facebook/wav2vec2-base",
                 preset="wav2vec2-base", projector_size=256, dropout=0.1,
                 freeze_feature_encoder=False, mask_padding=False, load_heads=True),
      input=waveform, loss="ce", loss_cfg=dict(label_smoothing=0.0), teachers=(),
      train=stage_train())))
  c.report = dict(compare=(("student_kd", "student_alone"), ("teacher", "student_kd")),
                  latency_repeats=100)
  return c
