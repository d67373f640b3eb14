#!/usr/bin/env bash
# Re-extracts the bundled MediaPipe models (vton-core/models/mediapipe/) from the
# mediapipe 0.10.14 wheel on PyPI and checks every sha256 (wheel and models).
# Usage: scripts/extract-mediapipe-models.sh [WHEEL]   (downloads the wheel when omitted)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=vton-core/models/mediapipe
WHEEL_NAME=mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA=a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4
wheel=${1:-}
if [ -z "$wheel" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 "mediapipe==0.10.14" -d "$tmp"
  wheel="$tmp/$WHEEL_NAME"
fi
echo "$WHEEL_SHA  $wheel" | sha256sum --check --quiet
mkdir -p "$DEST"
while read -r sha path; do
  name=$(basename "$path")
  unzip -p "$wheel" "$path" > "$DEST/$name"
  echo "$sha  $DEST/$name" | sha256sum --check
done <<'LIST'
9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c mediapipe/modules/pose_detection/pose_detection.tflite
e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f mediapipe/modules/pose_landmark/pose_landmark_full.tflite
9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite
a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite
LIST
unzip -p "$wheel" mediapipe-0.10.14.dist-info/LICENSE > "$DEST/LICENSE"
echo "models extracted to $DEST"
