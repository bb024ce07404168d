#!/usr/bin/env bash
# On a machine of two GPUs: the tiny LLaVA fixtures split over cuda:0 and cuda:1 (`--device-map`)
# must give the transformers reference answers (fixtures/llava/*/inference.json), as on one GPU.
# Usage: scripts/gpu/device_map_smoke.sh  (logs to $OUT)
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -5
export RUST_BACKTRACE=1 RUST_LOG=llava=info

# fixture dir, model type, device flags, dtype, label
run() {
  local dir=$1 type=$2 devices=$3 map=$4 dtype=$5 label=$6
  local ref=fixtures/llava/$dir/inference.json
  local query image
  query=$(python3 -c "import json;c=json.load(open('$ref'))[0];print(c['query'])")
  image=fixtures/vision/images/$(python3 -c "import json;c=json.load(open('$ref'))[0];print(c['images'][0])")
  local start=$SECONDS
  local args=(--model-type "$type" --model-id-or-path "fixtures/llava/$dir" --device "$devices"
              --dtype "$dtype" --query "$query" --images "$image" --do-sample false
              --max-new-tokens 24 --output-format json)
  [ -n "$map" ] && args+=(--device-map "$map")
  timeout 300 /tmp/bin/xtask infer "${args[@]}" > "$OUT/$label.json" 2> "$OUT/$label.err"
  local rc=$?
  python3 - "$ref" "$OUT/$label.json" "$label" "$rc" "$((SECONDS - start))" <<'PY'
import json, sys
ref, got, label, rc, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
r = json.load(open(ref))[0]
try:
    g = json.load(open(got))
except Exception as e:
    print(f"{label}: exit {rc}, no JSON ({e}), {secs} s"); sys.exit()
same = sum(a == b for a, b in zip(g["token_ids"], r["token_ids"]))
print(f"{label}: exit {rc}, {same}/{len(r['token_ids'])} tokens as transformers, "
      f"prompt {g['prompt_tokens']} (ref {r['prompt_tokens']}), {secs} s")
PY
  grep -i "device map\|error\|panick" "$OUT/$label.err" | head -3
}

run clip-mistral/original llava1d6-mistral-7b-instruct cuda:0 "" f32 one_gpu_mistral
run clip-mistral/original llava1d6-mistral-7b-instruct cuda:0,cuda:1 auto f32 two_gpus_mistral_auto
run clip-mistral/hf llava1_6-mistral-7b-instruct-hf cuda:0,cuda:1 0:cuda:0,1:cuda:1 f32 two_gpus_mistral_hf_ranges
run siglip-qwen2/hf llava-onevision-qwen2-0_5b-ov cuda:0,cuda:1 0:cuda:0,1:cuda:1 f32 two_gpus_onevision_tied
run clip-qwen2/hf llava-next-72b-hf cuda:0,cuda:1 auto bf16 two_gpus_qwen_bf16
# The same splits with one recorded decode graph a device.
export LLAVA_GRAPH_SPLIT=1
run clip-mistral/original llava1d6-mistral-7b-instruct cuda:0,cuda:1 auto f32 two_gpus_mistral_auto_graphs
run siglip-qwen2/hf llava-onevision-qwen2-0_5b-ov cuda:0,cuda:1 0:cuda:0,1:cuda:1 f32 two_gpus_onevision_tied_graphs
run clip-qwen2/hf llava-next-72b-hf cuda:0,cuda:1 auto bf16 two_gpus_qwen_bf16_graphs
