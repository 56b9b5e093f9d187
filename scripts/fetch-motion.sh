#!/bin/sh
# Fetches the public motion-capture recordings that the pose codec's real-motion
# checks use (benches/support/motion.rs): the two BVH files that the MIT-licensed
# `bvhtoolbox` 0.1.3 package ships as test data, from PyPI through pip, into
# target/motion/ (kept there: run once per checkout). The download is checked
# against its SHA-256.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir="$here/target/motion"
sdist=bvhtoolbox-0.1.3.tar.gz
sha=2d9dcae87cd6bfa28c89463450de84497e612682ca0697ea088fc7f2ef0f937f
files="test_mocapbank.bvh test_freebvh.bvh"

mkdir -p "$dir"
missing=0
for f in $files; do [ -f "$dir/$f" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

if [ ! -f "$dir/$sdist" ]; then
    pip=$(command -v pip3 || command -v pip || true)
    if [ -n "$pip" ]; then
        "$pip" download --quiet --no-deps --no-binary :all: -d "$dir" bvhtoolbox==0.1.3
    else
        python3 -m pip download --quiet --no-deps --no-binary :all: -d "$dir" bvhtoolbox==0.1.3
    fi
fi
echo "$sha  $dir/$sdist" | sha256sum -c --quiet -
for f in $files; do
    tar -xzf "$dir/$sdist" -C "$dir" --strip-components=3 "bvhtoolbox-0.1.3/tests/example_files/$f"
done
echo "motion recordings in $dir"
