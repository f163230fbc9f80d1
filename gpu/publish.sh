#!/usr/bin/env bash
# Builds what the lent GPU machine needs into gpu/carry/ (git-ignored; pass it as the device tool's `carry`):
#   carry/app/         framework-dependent publish of the CUDA check (no TorchSharp backend: libtorch comes from the
#                      GPU machine's Python install of PyTorch)
#   carry/dotnet.tar.xz  this machine's .NET runtime (muxer, hostfxr, Microsoft.NETCore.App): the GPU machines have none
# The device tool carries at most 64 MiB; the script fails if the folder is larger.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf carry && mkdir -p carry
dotnet publish MergeMix.ML.Gpu/MergeMix.ML.Gpu.csproj -c Release -r linux-x64 --self-contained false -o carry/app -nodeReuse:false
# Debug symbols and XML docs are not needed to run and would eat the carry budget.
find carry/app \( -name "*.dbg" -o -name "*.pdb" -o -name "*.xml" \) -delete
# The check never scores through ONNX Runtime (the deployed-model path; a GPU user would take the CUDA build of
# ONNX Runtime anyway), and its 28 MB CPU library alone would break the carry budget.
rm -f carry/app/libonnxruntime*.so
# Nothing from a libtorch package may ride along (it would shadow the GPU machine's CUDA build).
if ls carry/app | grep -E '^lib(torch|c10)' >/dev/null; then echo "a libtorch library slipped into carry/app" >&2; exit 1; fi
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
runtime=$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/* | sort -V | tail -1)
fxr=$(ls -d "$dotnet_root"/host/fxr/* | sort -V | tail -1)
tar -C "$dotnet_root" -cJf carry/dotnet.tar.xz dotnet "${fxr#$dotnet_root/}" "${runtime#$dotnet_root/}"
size=$(du -sm carry | cut -f1)
echo "gpu/carry: ${size} MiB (runtime $(basename "$runtime"))"
[ "$size" -le 64 ] || { echo "over the 64 MiB carry limit" >&2; exit 1; }
