#!/usr/bin/env bash
# How models/ was trained: the zoo and the recipe experiments side by side on one CUDA GPU, each config in
# its own process with the dataset held on the GPU, each stopped after MINUTES. Export and evaluation run
# afterwards on any machine (`disentangle-train zoo ... --no-train` is not needed: see README, "Model zoo").
# Usage (repository root, a Python with torch, numpy, pillow, tqdm, pydantic):
#   scripts/train_zoo_gpu.sh OUT_DIR [MINUTES]
# OUT_DIR receives zoo.tgz and experiments.tgz: per run, a checkpoint without optimizer state, log and config.
set -euo pipefail
out=${1:?usage: scripts/train_zoo_gpu.sh OUT_DIR [MINUTES]}
minutes=${2:-7}
py=${PYTHON:-python3}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

set +e
"$py" -m training.cli zoo ${CONFIGS:-configs/zoo/*.toml configs/experiments/*.toml} --runs runs/zoo --no-export \
  --parallel "${PARALLEL:-12}" --set device="${DEVICE:-cuda}" --set cache_on_device=true \
  --set time_limit_min="$minutes" ${EXTRA_SETS:-}
status=$?
set -e

# Adam's moments triple a checkpoint's size; the shipped runs keep weights, progress and config only.
"$py" - <<'PY'
import pathlib, torch
for path in sorted(pathlib.Path("runs/zoo").glob("*/checkpoint.pt")):
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.pop("optimizer", None)
    torch.save(state, path)
    print(f"{path.parent.name}: step {state['progress']['step']}, {state['progress']['images_seen']} images, "
          f"{state['progress']['wall_time_s']:.0f} s")
PY
for group in zoo experiments; do
  names=$(for c in configs/$group/*.toml; do basename "$c" .toml; done)
  files=$(for n in $names; do for f in runs/zoo/$n/checkpoint.pt runs/zoo/$n/log.jsonl runs/zoo/$n/config.json runs/zoo/$n.out; do if [ -e "$f" ]; then echo "$f"; fi; done; done)
  tar czf "$out/$group.tgz" $files
done
tail -c 400 runs/zoo/*.out | tr '\r' '\n' | grep -v '^$' | tail -40
ls -la "$out"
exit $status
