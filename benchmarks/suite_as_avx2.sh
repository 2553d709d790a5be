#!/usr/bin/env bash
# The test suite as an AVX2-only machine runs it, on a machine with bf16 (needs root, for a
# private mount): /proc/cpuinfo without the AVX-512/AMX flags, so `auto` precision picks float32
# as it does on AVX2, and XLA held to AVX2. oneDNN keeps the host's vector units (capping it at
# AVX2 crashes TensorFlow's bf16 kernels, which read the CPU themselves), so a real AVX2 machine
# is slower still. Arguments go to tests/run.sh:
#   sudo bash benchmarks/suite_as_avx2.sh             # the whole suite
#   sudo bash benchmarks/suite_as_avx2.sh -m "not slow"   # the fast tier
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${_AS_AVX2:-}" ]; then
  flags=$(mktemp)
  sed -E 's/ (avx512[a-z0-9_]*|amx_[a-z0-9]*|avx_vnni)//g' /proc/cpuinfo > "$flags"
  exec env _AS_AVX2="$flags" unshare -m bash "$0" "$@"
fi
mount --bind "$_AS_AVX2" /proc/cpuinfo
export XLA_FLAGS=--xla_cpu_max_isa=AVX2
start=$(date +%s)
bash tests/run.sh "$@"
echo "suite seconds: $(($(date +%s) - start))"
