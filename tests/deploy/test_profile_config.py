"""Device profiles are applied in one place: ``deploy.session_options`` and ``deploy.profile_config``."""

from edgemm.deploy import profile_config, session_options


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
