"""EmoDistill (Shome & Etemad, ICASSP 2024) on IEMOCAP, 4 classes (happy + excited), LOSO.

    python -m jaxser.train --config configs/emodistill_iemocap.py \\
        --config.corpus.manual_dir=/data/IEMOCAP_full_release
    ... --config configs/emodistill_iemocap.py:large              # HuBERT-large student
    ... --config configs/emodistill_iemocap.py:base,tau_l_sweep   # or tau_p_sweep

The paper's setting: HuBERT student from facebook/hubert-base-ls960 (":base", batch 128)
or facebook/hubert-large-ll60k (":large", batch 64); linguistic teacher on
bert-base-uncased; prosodic ResNet on eGeMAPS LLDs; α 1, β 10, γ 2, τ_L 5, τ_P 0.5; AdamW,
cosine annealing with warm-up, base lr 1e-4; leave-one-speaker-out over the 10 speakers.
Checkpoints are HF hub names found in the local HF cache, or directories: set
--config.stages.<stage>.model.checkpoint (and, for the linguistic teacher,
.input.checkpoint, its tokenizer) to a path otherwise. The batch is 32 utterances per step
with gradients accumulated over 4 (base) or 2 (large) steps. Not from the paper (it does
not say): 8 s of audio per utterance, 64 tokens per transcript, 20 epochs.
Stages, ablations and sweeps: configs/emodistill_emodb.py.
"""

from jaxser.config_utils import load_sibling

_base = load_sibling(__file__, "emodistill_emodb")

STUDENTS = {
    "base": (dict(checkpoint="facebook/hubert-base-ls960", preset=""), 4),
    "large": (dict(checkpoint="facebook/hubert-large-ll60k", preset=""), 2),
}


def get_config(arg: str = "base"):
  size, _, variant = arg.partition(",")
  if size not in STUDENTS:
    raise ValueError(f"configs/emodistill_iemocap.py:{arg}: student {size!r} is unknown; "
                     f"choose one of {sorted(STUDENTS)} (optionally ',refit', ',tau_l_sweep', "
                     "',tau_p_sweep' or ',seeds')")
  student, accum = STUDENTS[size]
  corpus = dict(name="iemocap", manual_dir="/path/to/IEMOCAP_full_release", sample_rate=16000,
                classes="4class", subset="all")
  return _base.build(f"emodistill_iemocap_{size}", corpus,
                     dict(name="leave_one_speaker_out", valid_speakers=1, max_folds=0),
                     student=student, text_checkpoint="bert-base-uncased", max_seconds=8.0,
                     max_tokens=64, batch_size=32, grad_accum_steps=accum, epochs=20,
                     variant=variant or "ablation")
