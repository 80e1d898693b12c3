"""Audio-visual fusion models: a timm-style registry of teacher, student and test variants."""

from edgemm.models import zoo as _zoo  # noqa: F401  (registers the models)
from edgemm.models.av import INPUT_NAMES, AVModel
from edgemm.models.fusion import FusionType
from edgemm.models.registry import create_model, list_models, register_model

__all__ = ["AVModel", "FusionType", "INPUT_NAMES", "create_model", "list_models", "register_model"]
