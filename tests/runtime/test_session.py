"""The runtime session: torch-free, same preprocessing as training, absent modalities, backends."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgemm.runtime import BundleError, load
from edgemm.runtime.session import BATCH_TRIALS


@pytest.fixture(scope="module")
def torch_model(trained):
    from edgemm.train import load_model

    return load_model(trained("test_concat") / "best.pt")[0].eval()


def _logits(model, image, audio, pi=1.0, pa=1.0, temperature=1.0):
    """The PyTorch model's scores: softmax of its logits over the bundle's calibrated temperature."""
    import torch

    with torch.no_grad():
        return (model(torch.from_numpy(image)[None], torch.from_numpy(audio)[None], torch.tensor([pi]),
                      torch.tensor([pa]))[0].double() / temperature).softmax(-1).numpy()


def test_predict_on_raw_media_matches_the_training_pipeline(onnx_bundle, torch_model, tmp_path):
    """One definition of preprocessing: files read by the training data path and raw arrays given to
    the runtime (odd-sized frame, 44.1 kHz stereo audio) reach the model as the same tensors."""
    import soundfile as sf
    from PIL import Image
    from support import write_manifest, write_png, write_wav

    from edgemm.data import open_dataset

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    rgb[10:30, 15:40] = (50, 60, 230)
    sr = 44100
    t = np.arange(int(0.7 * sr)) / sr
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 1500 * t), 0.2 * np.sin(2 * np.pi * 1510 * t)], 1).astype(np.float32)
    write_png(tmp_path / "f.png", rgb)
    write_wav(tmp_path / "a.wav", stereo, sr)
    csv = write_manifest(tmp_path / "m.csv", [["f.png", "a.wav", "blue_high", "train"]])
    session = load(onnx_bundle)
    item = open_dataset(csv, session.preprocess, labels=session.labels).train[0]
    expected = _logits(torch_model, item["image"], item["audio"], temperature=session.temperature)
    assert session.temperature == session.manifest.calibration["temperature"] != 1.0  # export calibrated it

    frame = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    wave, file_sr = sf.read(tmp_path / "a.wav", dtype="float32")
    pred = session.predict(image=frame, audio=wave, sample_rate=file_sr)
    got = np.array([pred.scores[label] for label in session.labels])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert pred.label == session.labels[int(expected.argmax())] and pred.image_present and pred.audio_present
    assert pred.top(2)[0] == (pred.label, pred.score)


def test_an_absent_modality_is_run_as_absent(onnx_bundle, torch_model):
    session = load(onnx_bundle)
    sr, n = session.preprocess.audio.sample_rate, session.preprocess.audio.clip_samples
    wave = (0.4 * np.sin(2 * np.pi * 3000 * np.arange(n) / sr)).astype(np.float32)
    pred = session.predict(audio=wave)
    assert not pred.image_present and pred.audio_present
    s = session.preprocess.image.size
    t = session.temperature
    expected = _logits(torch_model, np.zeros((3, s, s), np.float32), wave, pi=0.0, temperature=t)
    np.testing.assert_allclose([pred.scores[k] for k in session.labels], expected, atol=1e-5)
    # The flag, not the zeros, is what says "absent": with the flag at 0 any image gives the same
    # answer, with it at 1 a real image changes the answer.
    image = (np.random.default_rng(0).normal(size=(3, s, s)) * 1.5).astype(np.float32)
    np.testing.assert_allclose(_logits(torch_model, image, wave, pi=0.0, temperature=t), expected, atol=1e-6)
    # (in log-probabilities: a confident model moves its probabilities by little in absolute terms)
    assert np.abs(np.log(_logits(torch_model, image, wave, pi=1.0, temperature=t)) - np.log(expected)).max() > 1e-2
    with pytest.raises(ValueError, match="needs an image, audio, or both"):
        session.predict()


def test_the_same_onnx_bundle_runs_in_openvino_with_the_same_answers(onnx_bundle):
    ort, ov = load(onnx_bundle), load(onnx_bundle, backend="openvino")
    rng = np.random.default_rng(0)
    s, n = ort.preprocess.image.size, ort.preprocess.audio.clip_samples
    image = rng.normal(size=(5, 3, s, s)).astype(np.float32)
    audio = (0.3 * rng.normal(size=(5, n))).astype(np.float32)
    flags = np.array([1, 1, 0, 1, 0], np.float32), np.array([1, 0, 1, 1, 0], np.float32)
    np.testing.assert_allclose(ov.run(image, audio, *flags), ort.run(image, audio, *flags), atol=1e-4)


def test_batched_predictions_match_single_ones_whichever_way_the_backend_is_called(onnx_bundle):
    rng = np.random.default_rng(0)
    session = load(onnx_bundle)
    frames = [rng.integers(0, 255, (48 + 8 * k, 64, 3), dtype=np.uint8) for k in range(5)]
    waves = [0.1 * rng.standard_normal(4000 + 500 * k).astype(np.float32) for k in range(5)]
    images, audios = [frames[0], None, frames[2], frames[3], None], [waves[0], waves[1], None, waves[3], waves[4]]
    single = [session.predict(image=i, audio=a) for i, a in zip(images, audios)]
    session.choose_batching(5)
    for _ in range(2 * BATCH_TRIALS):  # real batches, timed each way in turn, until one way is kept
        assert session._trials is not None and session.call_batch is None
        session.predict_batch(images, audios)
    assert session._trials is None and session.call_batch in (1, None)
    for call_batch in (1, 2, None):
        session.call_batch = call_batch
        batched = session.predict_batch(images, audios)
        for one, many in zip(single, batched):
            assert (one.label, one.image_present, one.audio_present) == (many.label, many.image_present, many.audio_present)
            np.testing.assert_allclose(list(one.scores.values()), list(many.scores.values()), atol=1e-5)
    with pytest.raises(ValueError, match="an image, audio, or both"):
        session.predict_batch([None], [None])


def test_backend_choice_is_checked(onnx_bundle):
    with pytest.raises(BundleError, match="backend 'tflite' cannot run a 'onnx' bundle"):
        load(onnx_bundle, backend="tflite")
    with pytest.raises(ValueError, match=r"backend: 'tensorrt' is not one of \['onnxruntime', 'openvino', 'tflite', 'executorch'\]"):
        load(onnx_bundle, backend="tensorrt")


def test_runtime_loads_and_runs_a_bundle_without_torch(onnx_bundle, easy_manifest):
    code = textwrap.dedent(f"""
        import json, sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import numpy as np
        from edgemm.runtime import load
        from edgemm.cli import main
        s = load({str(onnx_bundle)!r})
        from PIL import Image
        import soundfile as sf
        root = {str(easy_manifest.parent)!r}
        rgb = np.asarray(Image.open(root + "/red_low_000.png").convert("RGB"))
        wave, sr = sf.read(root + "/red_low_000.wav", dtype="float32")
        print(s.predict(image=rgb, audio=wave, sample_rate=sr).label)
        assert main(["eval", {str(onnx_bundle)!r}, "--data", {str(easy_manifest)!r}, "--json"]) == 0
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "red_low"
    result = json.loads(lines[-1])
    assert result["n"] == 80 and result["accuracy"] >= 0.9


def _copy(bundle, tmp_path, edit=None):
    import shutil

    out = tmp_path / "copy.edgemm"
    shutil.copytree(bundle, out)
    if edit is not None:
        raw = json.loads((out / "manifest.json").read_text())
        edit(raw)
        (out / "manifest.json").write_text(json.dumps(raw))
    return out


def _one_label_less(m):
    m["labels"] = m["labels"][:-1]
    m["outputs"][0]["shape"][-1] = len(m["labels"])


def _image_48(m):
    m["preprocess"]["image"]["size"] = 48


@pytest.mark.parametrize("edit, message", [
    (_one_label_less, "the model gives 4 scores per sample but the manifest lists 3 labels"),
    (_image_48, r"the model does not take the inputs its manifest describes \(image 3x48x48"),
])
def test_a_manifest_that_disagrees_with_its_model_is_refused_at_load(onnx_bundle, tmp_path, edit, message):
    bundle = _copy(onnx_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match=message) as e:
        load(bundle)
    assert str(bundle) in str(e.value)


def test_a_damaged_model_file_is_named_not_a_backend_traceback(onnx_bundle, tmp_path):
    bundle = _copy(onnx_bundle, tmp_path)
    model = bundle / "model.onnx"
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[: size // 2])  # an interrupted copy to the device
    with pytest.raises(BundleError, match=rf"model.onnx is damaged \(expected {size} bytes"):
        load(bundle)
    # A bundle written before checksums were recorded: the backend's failure, named.
    raw = json.loads((bundle / "manifest.json").read_text())
    raw.pop("checksums")
    (bundle / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=r"onnxruntime cannot load model.onnx \(damaged or not a onnx model\?\)"):
        load(bundle)


def test_thread_counts_are_bounded_by_the_machine(onnx_bundle):
    """`--threads 100000` hung onnxruntime's session creation while memory grew: clamped, with a warning."""
    import os
    import warnings

    from edgemm.runtime import load
    from edgemm.runtime.backends import bounded_threads

    assert bounded_threads(None) is None and bounded_threads(2, cpus=4) == 2
    with pytest.warns(UserWarning, match=r"--threads 100000: this machine has 4 CPUs; using 4"):
        assert bounded_threads(100000, cpus=4) == 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = load(onnx_bundle, threads=100000)
    assert any(f"this machine has {os.cpu_count()} CPUs" in str(w.message) for w in caught)
    assert session.predict(audio=np.zeros(16000, np.float32)).label in session.labels  # it runs
