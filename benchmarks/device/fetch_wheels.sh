#!/usr/bin/env bash
# Download, on this machine, the wheels the GPU machine lacks (wheels.txt) into .whl/ at the
# repository root, for Python 3.12 on x86-64 Linux. .whl/ is git-ignored; name it in the device
# call's `carry` (about 23 MB). Packages published only as source are built into wheels here.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
grep -v '^#' benchmarks/device/wheels.txt | while read -r requirement; do
  [ -n "$requirement" ] || continue
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$requirement" 2>/dev/null \
    || python3 -m pip wheel --quiet --no-deps -w .whl "$requirement"
done
ls .whl
du -sh .whl
