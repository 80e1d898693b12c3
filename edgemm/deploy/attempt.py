"""One export tried: the bundle and its verification, or why there is none.

``--precision auto`` and ``edgemm bench`` both export several (target, precision) pairs and go on
past the ones that fail: a bundle that failed verification is kept and measured as such, an export
that failed is a row with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgemm.vocab import VerifyStatus

if TYPE_CHECKING:
    from edgemm.export.config import ExportConfig


@dataclass(frozen=True)
class Attempt:
    """What one export produced.

    Attributes:
        bundle: The bundle written (a failed verification's too), or None when export failed.
        verification: Its manifest's ``verification`` entry.
        error: Why export failed (empty when it wrote a bundle).
    """

    bundle: Path | None
    verification: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def verified(self) -> bool:
        return self.bundle is not None and self.verification.get("status") == VerifyStatus.PASSED

    @property
    def status(self) -> str:
        """``passed``, ``failed verification: WHY`` or ``export failed: WHY``."""
        if self.bundle is None:
            return f"export failed: {self.error}"
        if self.verified:
            return VerifyStatus.PASSED.value
        return f"failed verification: {self.verification.get('message', self.verification.get('status', 'unknown'))}"


def try_export(checkpoint: str | Path, config: ExportConfig, *, out: Path, log: Callable[[str], None] = print) -> Attempt:
    """``edgemm.export.export`` to ``out``; a failed verification or export is returned, not raised."""
    from edgemm.export import ExportError, VerificationFailed, export
    from edgemm.runtime.manifest import read_manifest

    try:
        return Attempt(out, export(checkpoint, config, out=out, log=log).verification)
    except VerificationFailed as e:
        return Attempt(e.bundle, read_manifest(e.bundle).verification)
    except ExportError as e:
        return Attempt(None, error=str(e))
