#!/usr/bin/env bash
# The one command for the lent GPU machine (device tool: carry ["gpu/carry"], command "bash gpu/device-check.sh").
# Step 1 decides whether step 2 is worth its GPU minutes: if TorchSharp's bridge does not bind to the machine's
# libtorch, it stops there with the loader's exact error. Reports land in $OUT (gpu-bind.md, gpu-check.md).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
timeout 120 bash "$here/run.sh" bind
rc=$?
if [ $rc -ne 0 ]; then echo "bind failed (rc $rc): stopping before the full check"; exit $rc; fi
timeout "${CHECK_TIMEOUT:-420}" bash "$here/run.sh" check --device cuda --steps "${CHECK_STEPS:-6}"
