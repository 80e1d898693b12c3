"""What channel pruning must leave alone, declared by the modules that know it.

A module that has such constraints defines ``pruning_hints()`` returning ``PruningHints`` for its
own layers only: a classifier keeps its outputs, a per-band normalisation keeps its bands, an
attention block prunes whole heads, a free parameter follows the channels it is added to. The
pruner gathers every module's hints (``gather``), so a fusion block, an encoder or your own model
states its constraints where it is written and the pruner knows nothing of their insides. The
vocabulary is Torch-Pruning's: ``ignored_layers``, ``unwrapped_parameters``, ``num_heads``.

    >>> class MyModel(nn.Module):
    ...     def pruning_hints(self) -> PruningHints:
    ...         return PruningHints(keep=[self.classifier])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn


@dataclass
class PruningHints:
    """Constraints of channel pruning, in Torch-Pruning's terms.

    Attributes:
        keep: Modules whose output channels stay whole (Torch-Pruning's ``ignored_layers``).
        unwrapped: ``(parameter, dim)``: free parameters pruned along ``dim`` with the channels they
            meet (Torch-Pruning's ``unwrapped_parameters``).
        num_heads: Attention projections and their head count: pruned a whole head at a time.
    """

    keep: list[nn.Module] = field(default_factory=list)
    unwrapped: list[tuple[nn.Parameter, int]] = field(default_factory=list)
    num_heads: dict[nn.Module, int] = field(default_factory=dict)

    def __add__(self, other: PruningHints) -> PruningHints:
        return PruningHints(self.keep + other.keep, self.unwrapped + other.unwrapped,
                            {**self.num_heads, **other.num_heads})

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))


def gather(model: nn.Module) -> PruningHints:
    """The sum of the hints every module in ``model`` (itself included) declares."""
    hints = PruningHints()
    for module in model.modules():
        declare = getattr(module, "pruning_hints", None)
        if callable(declare):
            hints = hints + declare()
    return hints
