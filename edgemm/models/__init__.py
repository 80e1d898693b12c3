"""Audio-visual fusion models: a timm-style registry of teacher, student and test variants.

Four open registries (``edgemm.registry.Registry``) hold every choice a model is built from:
``MODELS`` (whole models, ``@register_model``), ``IMAGE_ENCODERS``, ``AUDIO_ENCODERS`` and
``FUSIONS``. Register your own with their ``register`` decorator, or from an installed package
through the entry-point groups ``edgemm.models``, ``edgemm.image_encoders``,
``edgemm.audio_encoders`` and ``edgemm.fusions``.
"""

from edgemm.models import zoo as _zoo  # noqa: F401  (registers the models)
from edgemm.models.av import AVModel
from edgemm.models.encoders import AUDIO_ENCODERS, IMAGE_ENCODERS
from edgemm.models.fusion import FUSIONS, FusionType
from edgemm.models.registry import MODELS, create_model, list_models, register_model
from edgemm.vocab import INPUT_NAMES

__all__ = ["AUDIO_ENCODERS", "AVModel", "FUSIONS", "FusionType", "IMAGE_ENCODERS", "INPUT_NAMES", "MODELS",
           "create_model", "list_models", "register_model"]
