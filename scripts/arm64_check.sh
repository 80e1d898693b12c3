#!/usr/bin/env bash
# The Raspberry Pi install, run for real on Debian bookworm arm64 (Raspberry Pi OS's base) under qemu:
# docs/devices.md's install line in a fresh venv, then `edgemm run BUNDLE --video CLIP --json` for each
# bundle, compared answer by answer with the same command on this (x86-64) machine, and
# `edgemm doctor --device-profile raspberry-pi-5`. Emulated: timings mean nothing, answers do.
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
EXTRAS=${EDGEMM_ARM64_EXTRAS:-runtime,headless,tflite,mic}   # docs/devices.md, Raspberry Pi 5
inside() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/opt/edgemm/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }

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
# Not /sys: onnxruntime crashed under qemu reading the host's CPU topology there; without it cpuinfo
# prints "failed to parse the list of possible processors" and everything runs.
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
echo "board: $(inside uname -m), $(inside python3 --version), Debian $(cat "$ROOT/etc/debian_version")"

# edgemm from this checkout, as a wheel; the dependencies from PyPI's aarch64 wheels.
rm -rf "$ROOT/opt/wheels" "$ROOT/opt/work" && mkdir -p "$ROOT/opt/wheels" "$ROOT/opt/work"
python -m pip wheel --quiet --no-deps -w "$ROOT/opt/wheels" .
WHEEL=$(basename "$ROOT"/opt/wheels/edgemm-*.whl)
[ -x "$ROOT/opt/edgemm/bin/pip" ] || inside python3 -m venv /opt/edgemm
inside pip install --quiet --only-binary=:all: --force-reinstall --no-deps "/opt/wheels/$WHEEL"
inside pip install --quiet --only-binary=:all: "/opt/wheels/$WHEEL[$EXTRAS]"
inside pip check
inside python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch was installed'; print('no torch')"

cp "$CLIP" "$ROOT/opt/work/clip.${CLIP##*.}"
CLIP_IN=/opt/work/clip.${CLIP##*.}
status=0
for BUNDLE in "$@"; do
  name=$(basename "$BUNDLE")
  cp -r "$BUNDLE" "$ROOT/opt/work/$name"
  python -m edgemm.cli run "$BUNDLE" --video "$CLIP" --json > "$ROOT/opt/work/$name.host.jsonl"
  inside edgemm run "/opt/work/$name" --video "$CLIP_IN" --json > "$ROOT/opt/work/$name.arm64.jsonl"
  python - "$name" "$ROOT/opt/work/$name.host.jsonl" "$ROOT/opt/work/$name.arm64.jsonl" <<'EOF' || status=1
import json, sys
name = sys.argv[1]
host, arm = ([r for r in map(json.loads, open(p)) if "label" in r] for p in sys.argv[2:])  # not the summary
assert len(host) == len(arm) > 0, f"{name}: {len(host)} results here, {len(arm)} on arm64"
same = sum(h["label"] == a["label"] for h, a in zip(host, arm))
drift = max(abs(h["scores"][k] - a["scores"][k]) for h, a in zip(host, arm) for k in h["scores"])
print(f"{name}: {len(arm)} results on arm64, {same}/{len(host)} labels as on x86-64, largest score difference {drift:.5f}")
sys.exit(0 if same == len(host) and drift < 0.02 else 1)
EOF
done
inside edgemm doctor --device-profile raspberry-pi-5 || true   # no camera or microphone in a chroot
exit $status
