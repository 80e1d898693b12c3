#!/usr/bin/env bash
# The Raspberry Pi install, run for real on Debian bookworm arm64 (Raspberry Pi OS's base) under qemu:
# docs/devices.md's install line in a fresh venv, then `edgemm run BUNDLE --video CLIP --json` for each
# bundle and `edgemm profile BUNDLE`, compared answer by answer with `edgemm run` on this (x86-64)
# machine (scripts/arm64_compare.py: a table, then `arm64: N/M bundles agree with x86`, and
# benchmarks/results/arm64_check.json), and `edgemm doctor --device-profile raspberry-pi-5`.
# Emulated: timings mean nothing, answers do. OpenVINO is installed too, for OpenVINO bundles.
#
#   sudo apt install qemu-user-static debootstrap binfmt-support     # once, as root
#   bash scripts/arm64_check.sh CLIP BUNDLE [BUNDLE...]               # as root (chroot)
#
# The root file system (~250 MB) and its pip cache stay in $EDGEMM_ARM64_ROOT between runs
# (default ~/.cache/edgemm/arm64-bookworm); a second run takes minutes, the first ~30.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 CLIP BUNDLE [BUNDLE...]" >&2; exit 2; }
CLIP=$(realpath "$1"); shift
ROOT=${EDGEMM_ARM64_ROOT:-$HOME/.cache/edgemm/arm64-bookworm}
EXTRAS=${EDGEMM_ARM64_EXTRAS:-runtime,headless,tflite,mic,openvino}   # docs/devices.md's Pi line + OpenVINO
# The Raspberry Pi 5's core. qemu's default, `max`, emulates every extension qemu has (SVE2, SME, ...):
# no Pi has them, and OpenVINO's arm64 CPU plugin answered 1.09 logits away from onnxruntime under it
# (0 difference as a Cortex-A76 or an A64FX).
CPU=${EDGEMM_ARM64_CPU:-cortex-a76}
inside() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/opt/edgemm/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive QEMU_CPU="$CPU" "$@"; }

mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  if [ ! -x "$ROOT/bin/sh" ] || [ -d "$ROOT/debootstrap" ]; then
    rm -rf "$ROOT"  # a first stage cut short: start again (edgemm made this folder)
    debootstrap --arch=arm64 --foreign --variant=minbase bookworm "$ROOT"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
  fi
  cp /etc/resolv.conf "$ROOT/etc/"
  inside apt-get update -qq
  inside apt-get install -y -qq --no-install-recommends \
    python3-venv ca-certificates libportaudio2 >/dev/null
fi
cp /etc/resolv.conf "$ROOT/etc/"
# This machine's own certificate authorities (a proxy that inspects TLS), trusted inside too.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  inside update-ca-certificates >/dev/null
fi
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
# Not /sys (but see OpenVINO below): onnxruntime crashed under qemu reading the host's CPU topology
# there; without it cpuinfo prints "failed to parse the list of possible processors" and runs.
trap 'rc=$?; umount -l "$ROOT/sys" 2>/dev/null; umount -l "$ROOT/proc" 2>/dev/null; exit $rc' EXIT
echo "board: $(inside uname -m) ($CPU, emulated), $(inside python3 --version), Debian $(cat "$ROOT/etc/debian_version")"

# edgemm from this checkout, as a wheel; the dependencies from PyPI's aarch64 wheels.
rm -rf "$ROOT/opt/wheels" "$ROOT/opt/work" && mkdir -p "$ROOT/opt/wheels" "$ROOT/opt/work"
SRC=$(mktemp -d)  # the tracked files as they are now: setuptools would leave build/ in this checkout
git ls-files -z | tar --null -T - -c | tar -x -C "$SRC"
python -m pip wheel --quiet --no-deps -w "$ROOT/opt/wheels" "$SRC"
rm -rf "$SRC"
WHEEL=$(basename "$ROOT"/opt/wheels/edgemm-*.whl)
[ -x "$ROOT/opt/edgemm/bin/pip" ] || inside python3 -m venv /opt/edgemm
inside pip install --quiet --only-binary=:all: --force-reinstall --no-deps "/opt/wheels/$WHEEL"
inside pip install --quiet --only-binary=:all: "/opt/wheels/$WHEEL[$EXTRAS]"
inside pip check
inside python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch was installed'; print('no torch')"

cp "$CLIP" "$ROOT/opt/work/clip.${CLIP##*.}"
CLIP_IN=/opt/work/clip.${CLIP##*.}
for BUNDLE in "$@"; do
  name=$(basename "$BUNDLE")
  cp -r "$BUNDLE" "$ROOT/opt/work/$name"
  echo "$name: x86-64, then arm64 (emulated)"
  target=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['target'])" "$BUNDLE/manifest.json")
  # OpenVINO's arm64 CPU plugin reads the CPU's ID registers under /sys (it crashes without it),
  # onnxruntime crashes with the x86 host's /sys: mounted for OpenVINO bundles only.
  if [ "$target" = openvino ] && ! mountpoint -q "$ROOT/sys"; then mount -t sysfs sysfs "$ROOT/sys"; fi
  python -m edgemm.cli run "$BUNDLE" --video "$CLIP" --json > "$ROOT/opt/work/$name.host.jsonl" 2>/dev/null \
    || echo "  edgemm run failed on x86-64 (exit $?)"
  inside edgemm run "/opt/work/$name" --video "$CLIP_IN" --json > "$ROOT/opt/work/$name.arm64.jsonl" \
    2>"$ROOT/opt/work/$name.arm64.log" || echo "  edgemm run failed on arm64 (exit $?): $(tail -1 "$ROOT/opt/work/$name.arm64.log")"
  inside edgemm profile "/opt/work/$name" --runs 20 --json > "$ROOT/opt/work/$name.arm64.profile.json" \
    2>/dev/null || rm -f "$ROOT/opt/work/$name.arm64.profile.json"
  if mountpoint -q "$ROOT/sys"; then umount "$ROOT/sys"; fi
done
inside edgemm doctor --device-profile raspberry-pi-5 || true   # no camera or microphone in a chroot
BOARD="Debian $(cat "$ROOT/etc/debian_version") arm64 under qemu ($CPU), $(inside python3 --version), extras $EXTRAS"
python scripts/arm64_compare.py "$ROOT/opt/work" --board "$BOARD" \
  --json "${EDGEMM_ARM64_JSON:-benchmarks/results/arm64_check.json}"
