#!/usr/bin/env bash
# The GPU checks of issue 12 in one short run, printed as one table: training speed, predict at
# scale (CLI, streamed) and data-parallel training over NCCL, each on the CPU and on CUDA.
#
#   benchmarks/gpu.sh            # from the repository root; varbayes installed or PYTHONPATH=src
#   ROWS=200000 benchmarks/gpu.sh  # fewer predict rows (default 1,000,000)
#
# Needs a CUDA build of torch and at least one GPU; the DDP row needs two GPUs (NCCL refuses two
# ranks on one GPU) and is skipped with a note otherwise. Status: ready, not yet run on a GPU.
set -euo pipefail
PY=${PYTHON:-python}
ROWS=${ROWS:-1000000}
EPOCHS=${EPOCHS:-20}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="${PYTHONPATH:-}:$(pwd)/src"

NGPU=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$NGPU" -lt 1 ]; then echo "gpu.sh: no CUDA device visible to torch" >&2; exit 1; fi

# Data: the post's toy process at 100k training rows, and ROWS rows to predict.
$PY - "$WORK" "$ROWS" <<'PYEOF'
import sys
import numpy as np
work, rows = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.uniform(-4, 4, 100_000)
y = np.sin(x) + 0.3 * np.abs(x) * rng.normal(size=x.size)
np.savetxt(f"{work}/train.csv", np.column_stack([x, y]), fmt="%.6f", delimiter=",",
           header="x,y", comments="")
np.savetxt(f"{work}/predict.csv", rng.uniform(-4, 4, rows)[:, None], fmt="%.6f",
           header="x", comments="")
PYEOF

secs() { local t0 t1; t0=$(date +%s.%N); "$@" > "$WORK/log" 2>&1 || { cat "$WORK/log" >&2; return 1; }
         t1=$(date +%s.%N); $PY -c "print(f'{$t1 - $t0:.2f}')"; }
fit() {  # device, output directory
  $PY -m varbayes fit "$WORK/train.csv" --target y --epochs "$EPOCHS" --batch-size 10000 \
      --no-early-stopping --device "$1" --out "$2" --force; }

declare -A T
for dev in cpu cuda; do
  T[fit_$dev]=$(secs fit "$dev" "$WORK/m_$dev")
  T[predict_$dev]=$(secs $PY -m varbayes predict "$WORK/m_cpu" "$WORK/predict.csv" \
                    --device "$dev" --out "$WORK/p_$dev.csv" --force)
done
if [ "$NGPU" -ge 2 ]; then
  T[ddp_cpu]=$(secs torchrun --standalone --nproc_per_node=2 -m varbayes fit "$WORK/train.csv" \
      --target y --epochs "$EPOCHS" --batch-size 10000 --no-early-stopping --distributed on \
      --device cpu --out "$WORK/m_ddp_cpu" --force)
  T[ddp_cuda]=$(secs torchrun --standalone --nproc_per_node=2 -m varbayes fit "$WORK/train.csv" \
      --target y --epochs "$EPOCHS" --batch-size 10000 --no-early-stopping --distributed on \
      --device cuda --out "$WORK/m_ddp_cuda" --force)
else
  T[ddp_cpu]=-; T[ddp_cuda]=-
fi
# The two devices' predictions of one model must agree to float32 rounding of the draws.
AGREE=$($PY - "$WORK" <<'PYEOF'
import sys
import numpy as np
a = np.genfromtxt(f"{sys.argv[1]}/p_cpu.csv", delimiter=",", names=True)
b = np.genfromtxt(f"{sys.argv[1]}/p_cuda.csv", delimiter=",", names=True)
print(f"{np.max(np.abs(a['median'] - b['median']) / a['std']):.1e}")
PYEOF
)

ratio() { $PY -c "import sys; a, b = sys.argv[1:]; print('-' if '-' in (a, b) else f'{float(a) / float(b):.1f}x')" "$1" "$2"; }
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0))")
printf '\nvarbayes GPU checks on %s (%s GPU(s)), torch %s\n' "$GPU" "$NGPU" \
  "$($PY -c 'import torch; print(torch.__version__)')"
printf '%-52s %10s %10s %8s\n' "check (whole process, s)" "cpu" "cuda" "cpu/cuda"
printf '%-52s %10s %10s %8s\n' "fit hetero, 100k rows, $EPOCHS epochs, batch 10k" \
  "${T[fit_cpu]}" "${T[fit_cuda]}" "$(ratio "${T[fit_cpu]}" "${T[fit_cuda]}")"
printf '%-52s %10s %10s %8s\n' "predict $ROWS rows x 1000 draws (interval + median)" \
  "${T[predict_cpu]}" "${T[predict_cuda]}" "$(ratio "${T[predict_cpu]}" "${T[predict_cuda]}")"
printf '%-52s %10s %10s %8s\n' "DDP fit, 2 ranks (gloo on cpu, NCCL on cuda)" \
  "${T[ddp_cpu]}" "${T[ddp_cuda]}" "$(ratio "${T[ddp_cpu]}" "${T[ddp_cuda]}")"
[ "$NGPU" -ge 2 ] || echo "  (DDP skipped: needs 2 GPUs)"
echo "median, cpu vs cuda predictions of one model: max |diff| / std = $AGREE"
