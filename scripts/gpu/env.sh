# Sourced by the scripts beside it on the GPU machine: $OUT, the carried xtask unpacked to
# /tmp/bin/xtask (from $XTASK_XZ, default .carry/xtask.xz), CUDA's libraries and headers, and
# NVLink multicast kept off (the machines' rule: a program that uses it can take the host's
# shared GPUs out of service).
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/bin
xz -dc "${XTASK_XZ:-.carry/xtask.xz}" > /tmp/bin/xtask && chmod +x /tmp/bin/xtask || exit 1
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
# CUPTI (for cuBLAS on cubecl's stream, `blas_stream`): the toolkit's, else the one PyTorch ships, linked as
# the unversioned name cudarc opens.
cupti=$(ls "$CUDA_PATH"/extras/CUPTI/lib64/libcupti.so* 2>/dev/null | head -1)
[ -n "$cupti" ] || cupti=$(ls "$(python3 -c 'import nvidia.cuda_cupti as m, os; print(os.path.dirname(m.__file__))' 2>/dev/null)"/lib/libcupti.so* 2>/dev/null | head -1)
mkdir -p /tmp/bin/cupti && [ -n "$cupti" ] && ln -sf "$cupti" /tmp/bin/cupti/libcupti.so
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$CUDA_PATH/lib64:/tmp/bin/cupti:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
