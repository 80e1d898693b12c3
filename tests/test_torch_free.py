"""The data path and the CLI entry point must work on a device without torch."""

import subprocess
import sys
import textwrap


def test_data_and_preprocessing_import_and_run_without_torch(small_manifest):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import edgemm, edgemm.cli, edgemm.data
        from edgemm.data import open_dataset, PreprocessConfig
        from edgemm.train.config import TrainConfig
        edgemm.cli.build_parser()
        item = open_dataset({str(small_manifest)!r}, PreprocessConfig()).train[0]
        assert item["image"].shape == (3, 64, 64) and item["audio"].shape == (16000,)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
