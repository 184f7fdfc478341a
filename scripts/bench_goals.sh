#!/usr/bin/env bash
# The goals table of BENCHMARKS.md (issue 16): every workload with the server pinned to CPU 0 and
# the load generator to CPU 1, `--repeat 5`, at saturation and at half the saturating rate, and the
# peak RSS with 100,000 cards. Prints one table row per run; JSON reports go to
# target/bench-results/goals-<label>/. Takes about 10 minutes; run it on an otherwise idle machine.
#
#   scripts/bench_goals.sh [label]
#
# To measure the RSA code path of a machine without AVX-512 IFMA on one that has it, mask the
# feature for AWS-LC (and OpenSSL) in both processes:
#   OPENSSL_ia32cap='~0:~0x200000' scripts/bench_goals.sh no-ifma
# (Leave the variable unset otherwise: set but empty, it turns off every OpenSSL acceleration.)
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:-$(grep -q avx512ifma /proc/cpuinfo && echo ifma || echo no-ifma)}
out=target/bench-results/goals-$label
mkdir -p "$out"
cargo build --release -q -p card-member-cli
bench=target/release/card-member
pinned=(--server-cpus 0 --client-cpus 1)
run() { name=$1; shift; echo "== $label $name: $*" >&2; "$bench" bench "$@" 2>/dev/null > "$out/$name.json"; }
half() { python3 -c "import json; print(max(1, int(json.load(open('$out/$1.json'))['summary']['throughput_per_s']['median'] / 2)))"; }

for workload in seed minimal get; do
  run "$workload-saturation" --workload "$workload" --duration 6 --repeat 5 "${pinned[@]}"
  run "$workload-half-rate" --workload "$workload" --rate "$(half "$workload-saturation")" --duration 6 --repeat 5 "${pinned[@]}"
done
run seed-100k-cards --workload seed --duration 5 --extra-cards 100000

python3 - "$out" "$label" <<'PY'
import json, sys, pathlib
out, label = pathlib.Path(sys.argv[1]), sys.argv[2]
print("| machine | run | floor ms (min/med/max) | throughput /s (min/med/max) | ratio (med) | p99 ms (med) | server CPU ms/req | private-key CPU / floor | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for f in sorted(out.glob("*.json")):
    d = json.load(open(f)); s = d["summary"]
    r = lambda k: s[k]
    fl, tp = r("floor_ms_per_request"), r("throughput_per_s")
    rss = max(run["server_peak_rss_mib"] for run in d["runs"])
    print(f"| {label} | {f.stem} | {fl['min']:.3f} / {fl['median']:.3f} / {fl['max']:.3f} | "
          f"{tp['min']:,.0f} / {tp['median']:,.0f} / {tp['max']:,.0f} | {r('ratio')['median']:.2f} | "
          f"{r('p99_ms')['median']:.1f} | {r('server_cpu_ms_per_request')['median']:.3f} | "
          f"{r('server_private_key_cpu_to_parallel_floor')['median']:.2f} | {rss:.1f} |")
PY
