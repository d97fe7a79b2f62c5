"""Stage features that only some methods use, each turned on by a config setting.

noise.py      waveform noise: `stages.<name>.noise` (training, `noise.valid` validation)
              and the noisy test grid `config.eval_noise`
init_from.py  starting a stage from a teacher stage's weights: `stages.<name>.init_from`
segments.py   segmented inputs (`input.segment`): utterance groups, the examples a cache holds
"""
