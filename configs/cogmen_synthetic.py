"""COGMEN KD and masked training (Muaz et al.) on the synthetic dialogues, CPU-sized.

The synthetic dialogues (`data/synthetic_dialogues.py`: audio informative but noisy with a
speaker offset, an emotion-correlated video stream, labels persisting along the dialogue) in
their own train / dev / test split (`predefined_split`: 70 / 10 / 20 % of the dialogues).
Stages (methods/cogmen.py): COGMEN-A, COGMEN-AV (tested on AV and with video zeroed),
COGMEN-Mask (masked training p 0.1 / 0.3 / 0.3 / 0.3, masks of 1 utterance started with
p 0.2), and the triplet-KD student A from COGMEN-AV's graph embeddings.
Seeds: `--config.seed=k` (corpus fixed by corpus.seed); `scripts/cogmen_synthetic.py` runs
3 and tabulates weighted F1.

Differs from the paper, for CPU minutes: a smaller COGMEN (hidden 64, encoder FFN 256 instead
of 100 / 2048), smaller feature widths (audio 32, video 32, text unused), 120 dialogues, Adam
lr 1e-3 (COGMEN: 1e-4), 25 epochs, batch 8 dialogues, best epoch by validation weighted F1.
"""

import ml_collections

from jaxser.methods.cogmen import config_stages, config_train


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "cogmen_synthetic"
  c.seed = 0
  c.method = "cogmen"
  c.corpus = dict(name="synthetic_dialogues", seed=0, n_dialogues=120, audio_dim=32,
                  visual_dim=32, text_dim=16)
  c.protocol = dict(name="predefined_split", max_folds=0)
  c.train = config_train(1e-3, 25, 8)  # learning rate, epochs, batch (dialogues)
  c.stages = config_stages("av", model=dict(hidden=64, context_ff=256, dropout=0.3),
                           mask=dict(p_none=0.1, p_first=0.3, p_second=0.3, p_random=0.3,
                                     start_prob=0.2, length=1))
  c.stage_order = ("cogmen_a", "cogmen_av", "cogmen_mask", "student_kd")
  c.report = dict(compare=(("student_kd", "cogmen_a"),), latency_repeats=0)
  return c
