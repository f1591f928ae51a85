#!/usr/bin/env bash
# Everything Voxgate needs on a fresh Debian machine, then the offline models.
# Safe to run again: it installs only what is missing.
#
# Needs: Debian 12+, Rust stable >= 1.92 (rustup), root or sudo for apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# cmake + a C compiler: libopus (opusic-sys), libfvad (webrtc-vad) and llama.cpp (the local
# LLM, llama-cpp-sys-2) are built from source; libclang-dev: llama.cpp's bindings (bindgen).
# python3-pip: the model fetch. espeak-ng + sox: the local voice and fixture tools.
# baresip-core + sip-tester (SIPp): real SIP peers for the phone-call tests.
# chromium: the browser of the WebRTC and widget tests (driven by npm playwright-core).
# postgresql: the tests start their own throwaway PostgreSQL servers (the store's
# scale-out backend); the server itself needs none (SQLite by default).
# tzdata: campaign windows and analytics days in named time zones (jiff reads /usr/share/zoneinfo).
# libasound2-dev: `voxgate console` (cpal's ALSA backend); pulseaudio, pulseaudio-utils and
# libasound2-plugins: its test plays and records through PulseAudio null sinks behind ALSA.
# opus-tools: the WhatsApp test's voice notes (opusenc writes Ogg Opus, as WhatsApp does).
# libspandsp-dev: the reference G.722 that codecs/tests/g722_reference.rs checks ours against.
# openssl: the SIP-over-TLS tests issue their certificates with it.
# stunnel4: carries SIPp (built without TLS) over TLS in the SIP-over-TLS tests.
PACKAGES=(build-essential cmake libclang-dev pkg-config python3 python3-pip espeak-ng libespeak-ng-dev sox baresip-core sip-tester
  chromium postgresql tzdata libasound2-dev pulseaudio pulseaudio-utils libasound2-plugins opus-tools libspandsp-dev openssl stunnel4)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: error: cargo not found; install Rust stable (>= 1.92) with rustup first" >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "setup: error: python3 has no pip (apt-get install python3-pip)" >&2
  exit 1
fi

# The browser tests' npm packages (playwright-core drives Debian's chromium; it
# downloads no browser). Only the tests need them: without Node.js the server
# still runs, and the browser tests say what is missing.
if [ ! -d "$root/media-server/tests/browser/node_modules/playwright-core" ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd "$root/media-server/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "setup: warning: npm not found; the browser tests need Node.js >= 20 with npm" >&2
  fi
fi

# Test tools from PyPI, into the git-ignored .test-tools/ (only the tests use them):
# moto[server], the S3 server the recording-store tests start on 127.0.0.1, and
# schemathesis, which fuzzes the control API from its OpenAPI document;
# livekit-api (with livekit-protocol), LiveKit's own Python packages, with which
# the LiveKit tests decode Twirp requests and check and sign tokens.
test_tool() { # folder, package it provides, requirement
  if [ ! -f "$root/.test-tools/$1/$2/__init__.py" ]; then
    echo "setup: installing $3 into .test-tools/$1 (for the tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --no-warn-conflicts --root-user-action=ignore \
      --target "$root/.test-tools/$1" "$3"
  fi
}
test_tool moto moto 'moto[server]==5.2.5'
test_tool schemathesis schemathesis 'schemathesis==4.32.5'
test_tool livekit livekit/api 'livekit-api==1.2.2'

"$root/scripts/fetch-models.sh"
