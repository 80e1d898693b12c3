"""onnxruntime execution providers: a Jetson profile's TensorRT -> CUDA -> CPU chain, its options,
its engine cache, its fallback on a build without them, and which provider ran each node.

This machine's onnxruntime has only the CPU provider; the choice for a build with TensorRT and CUDA
is checked on the list such a build reports (``get_available_providers``)."""

import json
import warnings

import numpy as np
import pytest

from edgemm.cli import main
from edgemm.devices import load_profile
from edgemm.runtime.backends.onnxruntime import CPU, TENSORRT, choose_providers, engine_cache_dir
from edgemm.runtime.session import Session

JETSON_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_jetson_build_gets_tensorrt_then_cuda_then_cpu_with_their_options(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really a model, but content to name the cache by")
    jetson = load_profile("jetson-orin-nano")
    providers, note = choose_providers(jetson.provider, JETSON_BUILD, {**jetson.backend_options, "device_id": 0}, model)
    assert note is None
    assert [p for p, _ in providers] == JETSON_BUILD
    trt, cuda, cpu = (o for _, o in providers)
    assert trt["trt_int8_enable"] == trt["trt_fp16_enable"] == "True" and "device_id" not in trt
    assert trt["trt_engine_cache_path"] == str(engine_cache_dir(model))
    assert engine_cache_dir(model).parent == tmp_path / "cache" / "edgemm" / "tensorrt"
    assert cuda == {"device_id": "0"} and cpu == {}
    # another model gets another cache directory; a path the profile gives is kept
    other = tmp_path / "other.onnx"
    other.write_bytes(b"other content")
    assert engine_cache_dir(other) != engine_cache_dir(model)
    given, _ = choose_providers("TensorRT", JETSON_BUILD, {"trt_engine_cache_enable": True,
                                                           "trt_engine_cache_path": "/data/engines"}, model)
    assert given == [(TENSORRT, {"trt_engine_cache_enable": "True", "trt_engine_cache_path": "/data/engines"}), (CPU, {})]


def test_a_chain_skips_what_the_build_lacks_and_says_so():
    providers, note = choose_providers("TensorRT,CUDA,CPU", ["CUDAExecutionProvider", "CPUExecutionProvider"],
                                       {"trt_fp16_enable": True})
    assert [p for p, _ in providers] == ["CUDAExecutionProvider", CPU]
    assert note == ("onnxruntime here has no TensorrtExecutionProvider (available: CUDAExecutionProvider, "
                    "CPUExecutionProvider); running on CUDAExecutionProvider -> CPUExecutionProvider")
    providers, note = choose_providers("TensorRT,CUDA,CPU", [CPU], {})
    assert providers == [(CPU, {})] and "no TensorrtExecutionProvider, CUDAExecutionProvider" in note
    with pytest.raises(ValueError, match="'?TensorrtExecutionProvider'? is not in this onnxruntime build"):
        choose_providers("tensorrt", [CPU], {})  # one provider asked for by name: no silent fallback
    with pytest.raises(ValueError, match="are not in this onnxruntime build; available: CPUExecutionProvider"):
        choose_providers("TensorRT,CUDA", [CPU], {})


def test_the_jetson_profile_falls_back_to_the_cpu_here_with_a_warning(onnx_bundle):
    jetson = load_profile("jetson-orin-nano")
    with pytest.warns(UserWarning, match="onnxruntime here has no TensorrtExecutionProvider, CUDAExecutionProvider"):
        session = Session(onnx_bundle, **jetson.session_kwargs("onnx"))
    assert session.backend.device == CPU
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu = Session(onnx_bundle, backend="onnxruntime", provider="cpu")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(cpu.preprocess.audio.clip_samples)).astype(np.float32)
    a, b = session.predict(frame, audio), cpu.predict(frame, audio)
    assert a.label == b.label
    np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-6)


def test_profile_reports_which_provider_ran_the_nodes(onnx_bundle, capsys):
    with pytest.warns(UserWarning, match="no TensorrtExecutionProvider"):  # the CLI prints it on stderr
        code = main(["profile", str(onnx_bundle), "--device-profile", "jetson-orin-nano", "--runs", "5", "--warmup", "1",
                     "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == CPU and set(report["providers"]) == {CPU} and report["providers"][CPU] >= 5
    assert all(row["provider"] == CPU for row in report["layers"])
