#!/usr/bin/env bash
# Runs the CUDA check from gpu/carry/ (see publish.sh). On the GPU machine: `bash gpu/run.sh bind`, then
# `bash gpu/run.sh check`. libtorch is taken from $TORCH_LIB, else from the Python install of PyTorch.
# On a CPU machine, `TORCH_LIB=<libtorch-cpu package native folder> bash gpu/run.sh check --device cpu` tests the route.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$here/carry/app/MergeMix.ML.Gpu.dll" ] || { echo "gpu/carry is missing: run gpu/publish.sh first" >&2; exit 1; }
runtime=${DOTNET_CARRIED_ROOT:-${TMPDIR:-/tmp}/mergemix-dotnet}
if [ ! -x "$runtime/dotnet" ]; then mkdir -p "$runtime" && tar -C "$runtime" -xJf "$here/carry/dotnet.tar.xz"; fi
if [ -z "${TORCH_LIB:-}" ]; then
  TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  echo "PyTorch $(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') at $TORCH_LIB"
fi
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DOTNET_ROOT="$runtime"
exec "$runtime/dotnet" "$here/carry/app/MergeMix.ML.Gpu.dll" "$@"
