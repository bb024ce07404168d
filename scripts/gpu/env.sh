# Sourced by the scripts beside it on the GPU machine: $OUT, the carried xtask unpacked to
# /tmp/bin/xtask (from $XTASK_XZ, default .carry/xtask.xz), CUDA's libraries and headers, and
# NVLink multicast kept off (the machines' rule: a program that uses it can take the host's
# shared GPUs out of service).
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/bin
xz -dc "${XTASK_XZ:-.carry/xtask.xz}" > /tmp/bin/xtask && chmod +x /tmp/bin/xtask || exit 1
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
