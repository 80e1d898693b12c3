"""Device profiles are applied in one place: ``deploy.session_options``, ``deploy.profile_config``
and ``deploy.live_inputs``."""

import pytest

from edgemm.deploy import live_inputs, profile_config, session_options
from edgemm.errors import UsageError


def test_profile_config_takes_the_device_profiles_settings_and_explicit_ones_win(onnx_bundle):
    laptop = profile_config(onnx_bundle, "x86-laptop-cpu", runs=7, layers=0)
    assert (laptop.frame_size, laptop.threads, laptop.runs) == ((1280, 720), 4, 7)  # the profile's YAML
    session = session_options(onnx_bundle, "x86-laptop-cpu")
    assert (laptop.backend, laptop.provider, laptop.options) == (session["backend"], session["provider"], session["options"])
    assert laptop.backend == "openvino" and laptop.provider == "CPU"  # OpenVINO reads the ONNX bundle
    mine = profile_config(onnx_bundle, "x86-laptop-cpu", threads=1, frame_size=(320, 240))
    assert (mine.frame_size, mine.threads) == ((320, 240), 1)
    bare = profile_config(onnx_bundle)
    assert (bare.frame_size, bare.threads, bare.backend, bare.options) == ((640, 480), None, None, {})


def test_live_inputs_open_the_profiles_camera_and_microphone_only_when_no_input_is_given(tmp_path):
    pi = live_inputs("raspberry-pi-5")
    assert (pi.camera, pi.mic, pi.mic_rate, pi.video) == ("0", "default", 48000, None)  # the profile's YAML
    clip = live_inputs("raspberry-pi-5", video=tmp_path / "a.mp4")
    assert (clip.camera, clip.mic, clip.mic_rate) == (None, None, None)  # a file: no device is opened
    mine = live_inputs("raspberry-pi-5", camera="2")
    assert (mine.camera, mine.mic) == ("2", None)
    usb = live_inputs("raspberry-pi-5", mic="USB")
    assert (usb.camera, usb.mic, usb.mic_rate) == (None, "USB", 48000)  # the profile's rate for the given mic
    assert live_inputs(mic="USB").mic_rate is None  # no profile: the microphone's own rate
    with pytest.raises(UsageError, match="nothing to read"):
        live_inputs()
