# Sourced by the device run scripts (scripts/experiments/device_runN.sh, N >= 14): the settings
# every run keeps (NVLink multicast off), NCCL's folder in PyTorch's package, a log folder
# /tmp/logsN packed into $OUT/runN.tgz by `pack`, and the build in /tmp/b (configured once per
# machine, rebuilt by ninja). Usage: source "$(dirname "$0")/device_common.sh" N
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
run_number=$1
L=/tmp/logs$run_number; rm -rf "$L"; mkdir -p "$L"
pack() { tar czf "$OUT/run$run_number.tgz" -C /tmp "logs$run_number"; }
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1; fi
ninja -C /tmp/b >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; pack; exit 1; }
echo "built at $SECONDS s"
