"""DKDFMH (Zhao et al., ICASSP 2024) on IEMOCAP improvised, 4 classes: the paper's setting.

    python -m jaxser.train --config configs/dkdfmh_iemocap.py \\
        --config.corpus.manual_dir=/data/IEMOCAP_full_release
    ... --config configs/dkdfmh_iemocap.py:loso              # leave one speaker out
    ... --config configs/dkdfmh_iemocap.py:random,beta_sweep  # β ∈ {1,2,4,8,16}

`random` (default) is the paper's random 80/20 split of the improvised utterances, which
is SPEAKER-DEPENDENT (the same speakers train and test; 10% of the training part
validates); `loso` leaves one of the 10 speakers out per fold (the next validates).
Models, features, losses and training: configs/dkdfmh_emodb.py (`build`).
"""

from jaxser.config_utils import load_sibling

_base = load_sibling(__file__, "dkdfmh_emodb")

PROTOCOLS = {
    "random": dict(name="stratified_random", test_fraction=0.2, valid_fraction=0.1, repeats=1,
                   max_folds=0),
    "loso": dict(name="leave_one_speaker_out", valid_speakers=1, max_folds=0),
}


def get_config(arg: str = "random"):
  protocol, _, variant = arg.partition(",")
  if protocol not in PROTOCOLS:
    raise ValueError(f"configs/dkdfmh_iemocap.py:{arg}: protocol {protocol!r} is unknown; "
                     f"choose one of {sorted(PROTOCOLS)} (optionally ',beta_sweep')")
  corpus = dict(name="iemocap", manual_dir="/path/to/IEMOCAP_full_release", sample_rate=16000,
                classes="4class", subset="improvised")
  name = "dkdfmh_iemocap" + ("" if protocol == "random" else f"_{protocol}")
  return _base.build(name, corpus, dict(PROTOCOLS[protocol]), variant or "ablation")
