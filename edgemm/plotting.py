"""Figures for reports (matplotlib, imported only when a plot is asked for; headless backend)."""

from __future__ import annotations

from pathlib import Path

from edgemm.atomic import atomic_path, require_parent


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lays out, writes (atomically, into an existing directory) and closes ``fig``.

    Raises:
        FileNotFoundError: The directory of ``path`` does not exist.
    """
    plt = pyplot()
    path = require_parent(path, "--plot")
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
