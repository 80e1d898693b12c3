#!/usr/bin/env bash
# The test command: on a fresh machine with Python 3.11 and pip, install everything the tests need
# (apt packages when apt-get is there, pip extras with the GUI build of OpenCV), check the environment,
# lint, and run the whole suite. `.ci/run` runs exactly this. Extra arguments go to pytest
# (e.g. `bash scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."

# OS audio/video paths the runtime tests use: PortAudio + a private PulseAudio as the virtual
# microphone, ffmpeg as a loopback camera, Chromium for the preview page, Xvfb + ImageMagick for the
# --show window, the GL/GLib libraries the GUI build of OpenCV loads; OpenSSH (client and server) for
# the "remote device" the --remote tests reach on 127.0.0.1.
APT_PACKAGES="libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins ffmpeg chromium xvfb xauth imagemagick libgl1 libglib2.0-0 openssh-server openssh-client"
if command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  $SUDO mkdir -p /run/sshd  # sshd's privilege-separation directory (the tests run a private sshd, no service)
fi

# torch: the build that runs on CPU here, paired with a torchvision that imports beside it.
# pyproject keeps ranges; the pin lives only here.
python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
python -m pip install --quiet -e ".[dev]"
# The --show test needs OpenCV's GUI build: `.[dev]` takes it through the `gui` extra, and no extra
# installs the headless wheel beside it (both write the same `cv2/` folder). Stop here if cv2 is not
# whole or is headless.
python -c "import cv2, re; cv2.resize, cv2.INTER_AREA, cv2.imshow; assert not re.search(r'GUI:\s+NONE', cv2.getBuildInformation()), 'headless OpenCV'; print('cv2', cv2.__version__, cv2.__file__)"

# Unmet requirements of edgemm's dependency tree fail the run (unrelated packages are only listed).
python scripts/pip_check.py
# Lint with the configuration in pyproject.toml.
python -m ruff check edgemm tests benchmarks scripts

# Two xdist workers (one compute thread each, tests/conftest.py): much of the suite waits on
# subprocesses, conversions and real-time clips, so two at a time nearly halve its time on 2 cores.
# `-n 0` in the arguments runs it in one process. The 15 slowest tests are listed at the end.
python -m pytest -q -n 2 --dist loadgroup --durations=15 "$@"
