"""Stage features that only some methods use, each turned on by a config setting.

noise.py      waveform noise: `stages.<name>.noise` (training, `noise.valid` validation)
              and the noisy test grid `config.eval_noise`
init_from.py  starting a stage from a teacher stage's weights: `stages.<name>.init_from`
augmenters.py the training-batch augmenter a stage's settings pick (noise, spec_augment,
              modality_mask)
modality_mask.py  COGMEN's masked training of dialogue inputs: `stages.<name>.modality_mask`
test_inputs.py    the best model tested on changed inputs too: `stages.<name>.test_inputs`
segments.py   segmented inputs (`input.segment`): utterance groups, the examples a cache holds
"""
