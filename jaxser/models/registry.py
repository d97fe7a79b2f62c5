"""`build_model(config.stages.<name>.model, num_classes)`: model name -> Flax module."""

from __future__ import annotations

from jaxser.models.cogmen import DialogueCOGMEN
from jaxser.models.dkdfmh import DKDFMH
from jaxser.models.emodistill import EmoDistillStudent, EmoDistillWhisperStudent, TextClassifier
from jaxser.models.litecnn import LiteCNN
from jaxser.models.mlp import MLP
from jaxser.models.resnet import ProsodicResNet
from jaxser.models.spectral_cnn import SpectralCNN
from jaxser.models.w2v2_classifier import W2V2Classifier
from jaxser.models.whisper_classifier import FeatureHead, WhisperClassifier

MODELS = {"cogmen": DialogueCOGMEN, "dkdfmh": DKDFMH, "emodistill_student": EmoDistillStudent,
          "emodistill_whisper_student": EmoDistillWhisperStudent, "litecnn": LiteCNN,
          "mlp": MLP, "prosodic_resnet": ProsodicResNet, "spectral_cnn": SpectralCNN,
          "text_classifier": TextClassifier, "w2v2_classifier": W2V2Classifier,
          "whisper_classifier": WhisperClassifier, "feature_head": FeatureHead}


def build_model(cfg, num_classes: int):
  """Instantiates `cfg.name` with the other keys of `cfg` as module fields."""
  cfg = dict(cfg)
  name = cfg.pop("name")
  if name not in MODELS:
    raise ValueError(f"model name {name!r} is unknown; choose one of {sorted(MODELS)}")
  cls = MODELS[name]
  unknown = set(cfg) - set(cls.__dataclass_fields__)
  if unknown:
    raise ValueError(f"model {name!r} has no settings {sorted(unknown)}; its settings are "
                     f"{sorted(k for k in cls.__dataclass_fields__ if k not in ('parent', 'name'))}")
  return cls(num_classes=num_classes, **{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in cfg.items()})
