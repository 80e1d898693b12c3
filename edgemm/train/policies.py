"""Augmentation policy names, torch-free (the CLI and ``TrainConfig`` read them without torch)."""

from __future__ import annotations

import enum

from edgemm.config import parse_enum


class AugmentPolicy(str, enum.Enum):
    """Named augmentation policies (``TrainConfig.augment``, ``--augment``).

    - ``none``: inputs as they come.
    - ``camera`` (default): what changes between two cameras and two microphones but not the class:
      position, scale, rotation, exposure, contrast, colour, colour vs greyscale, light-on-dark vs
      dark-on-light, focus; gain, time shift, polarity, noise. No mirror image: it changes the class
      of text, digits, arrows and hand signs.
    - ``natural``: ``camera`` plus horizontal flips, for scenes and objects whose mirror image is the
      same class.
    """

    NONE = "none"
    CAMERA = "camera"
    NATURAL = "natural"


DEFAULT_POLICY = AugmentPolicy.CAMERA


def parse_policy(value: AugmentPolicy | str | bool) -> AugmentPolicy:
    """A policy from its name (``True`` / ``False``, from configs written before policies, map to the default / none)."""
    if isinstance(value, bool):
        return DEFAULT_POLICY if value else AugmentPolicy.NONE
    return parse_enum(AugmentPolicy, value, "augment")
