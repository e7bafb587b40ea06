#!/usr/bin/env bash
# Bytes allocated per NBD request through roamd's export stack (BenchmarkDotNet, [MemoryDiagnoser], in process):
# 4 KiB READ and WRITE over in-memory pipes, a plain primary and one with an async replica on loopback TLS.
# Then, for each, where the bytes come from (the runtime's allocation samples by type). No root, about a minute.
# Extra arguments go to BenchmarkDotNet (e.g. --filter '*Write*').
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${ROAM_BENCH_SKIP_BUILD:-0}" = 1 ] || scripts/bootstrap.sh >&2
bench=bench/Roam.Bench/bin/Release/net10.0/roam-bench.dll
dotnet "$bench" layer-allocations --filter '*' --artifacts "$(mktemp -d)" "$@" | sed -n '/^| Method/,/^$/p'
for stack in plain replicated; do
  for op in write read; do dotnet "$bench" alloc-sources "$stack" "$op" >&2; done
done
