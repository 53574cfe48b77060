#!/usr/bin/env bash
# Debian's espeak-ng and sox for the voice tests (tests/test_speech.py, test_delivery.py,
# test_api_transcribe.py): espeak-ng speaks the test answers and the role-play caller, sox
# pads, mixes and converts them. No audio is committed; it is made at test time.
# Idempotent: installs only what is missing (apt-get update first, once).
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" libsox-fmt-all
fi
espeak-ng --version
sox --version
