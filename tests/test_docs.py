"""The documentation holds: docs/architecture.md's examples run as written (in order, sharing one
namespace), and every benchmark result file is named where readers look."""

import re
from pathlib import Path

from edgemm.compress.recipe import STAGES
from edgemm.models import FUSIONS, IMAGE_ENCODERS, MODELS

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_architecture_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 4  # encoder, fusion block, model, stage
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
        assert "doc_tiny_cnn" in IMAGE_ENCODERS and "doc_sum" in FUSIONS and "doc_av_small" in MODELS
        assert "doc_shrink_head" in STAGES
    finally:
        for registry, name in ((IMAGE_ENCODERS, "doc_tiny_cnn"), (FUSIONS, "doc_sum"), (MODELS, "doc_av_small"),
                               (STAGES, "doc_shrink_head")):
            registry.unregister(name)


def test_the_example_model_file_builds_checks_and_takes_absent_modalities():
    import torch

    from edgemm.models import create_model

    ref = f"{DOC.parent / 'examples' / 'my_av_model.py'}:build"
    model = create_model(ref, num_classes=4).eval()
    assert model.flags and model.preprocess.image.size == 64 and model.preprocess.audio.sample_rate == 16000
    image, audio, ip, ap = model.example_inputs(2)
    with torch.no_grad():
        live = model(torch.randn_like(image), torch.randn_like(audio) * 0.1, ip, ap)
        muted = model(torch.randn_like(image), torch.randn_like(audio) * 0.1, ip, torch.zeros(2))
    assert live.shape == muted.shape == (2, 4)
    assert "docs/examples/my_av_model.py:build" in (DOC.parent / "models.md").read_text()


def test_every_benchmark_result_is_referenced():
    """A result file that no benchmark page names is a figure nobody can find or reproduce."""
    bench = DOC.parents[1] / "benchmarks"
    pages = "".join((bench / name).read_text() for name in ("README.md", "HISTORY.md"))
    orphans = [p.name for p in sorted((bench / "results").glob("*.json")) if p.name not in pages]
    assert not orphans, f"benchmarks/results/ files named by neither README.md nor HISTORY.md: {orphans}"
