#!/usr/bin/env bash
# Where the server's CPU per request goes, by component (BENCHMARKS.md "Where the CPU beyond the
# floor goes"): `card-member bench --workload W` drives a server at saturation while
# `perf record -F 1999` samples every thread of the server from its start to its end; each sampled function is put
# in one component by its name (self time, no call graphs) and each component's share of the
# samples is multiplied by the server CPU per request the same run measured from /proc.
#
#   scripts/profile_components.sh WORKLOAD [SERVER_BIN] > table.txt
#
# WORKLOAD: seed, minimal or get. SERVER_BIN: another build's binary to profile (`bench --server`);
# this checkout's release build drives the load. Needs `perf` and perf_event_paranoid <= 2.
# Run it on an otherwise idle machine; it takes about 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
workload=$1
server=${2:-}
bench=target/release/card-member
[ -x "$bench" ] || cargo build --release -q -p card-member-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(bench --workload "$workload" --duration 16)
[ -n "$server" ] && args+=(--server "$server")
"$bench" "${args[@]}" > "$out/bench.json" 2>/dev/null &
bench_pid=$!
# The server is the bench's child that serves: sampled from its start (a second into the bench)
# until it exits with the bench; seeding its brands and cards is a small part of the run.
server_pid=
for _ in $(seq 50); do
  server_pid=$(pgrep -n -f "^[^ ]*card-member[^ ]* serve" || true)
  [ -n "$server_pid" ] && break
  sleep 0.1
done
[ -n "$server_pid" ] || { echo "no server process found" >&2; exit 1; }
perf record -q -F 1999 -p "$server_pid" -o "$out/perf.data" 2>/dev/null >/dev/null || true
wait "$bench_pid"
perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -q --percent-limit 0 2>/dev/null \
  > "$out/report.txt"
python3 - "$out/report.txt" "$out/bench.json" "$workload" <<'PY'
import json, re, sys
report, bench, workload = sys.argv[1:]
cpu = json.load(open(bench))["summary"]["server_cpu_ms_per_request"]["median"]
RULES = [
    ("RSA (private-key operations and the brand signature check)",
     r"rsaz|bn_|BN_|mulx|sqrx|mont|RSA_|rsa_|bignum|ecp_nistz|aws_lc_0_\d+_0_bn"),
    ("kernel: scheduling, wakeups, interrupts", r"^K:.*(sched|futex|wake|switch|pick_next|enqueue|dequeue|irq|apic|idle|hrtimer|tick|rcu|timer|cpuacct|update_curr|load_balance|task)"),
    ("kernel: files (WAL writes and fsync, locks)", r"^K:.*(ext4|jbd2|fsync|vfs_|file|blk|nvme|virtio|iomap|xfs|page_cache|filemap|folio|writeback|fdatasync|locks_|posix_lock|fcntl|pwrite|pread)"),
    ("kernel: loopback TCP, epoll, other", r"^K:"),
    ("allocation and memory copies", r"malloc|free|memmove|memcpy|memset|realloc|calloc|_int_|cfree|mi_|__memcmp|memcmp"),
    ("SQLite", r"sqlite|^(btree|pager|wal|vdbe|pcache|Vdbe|balance|moveTo|unix|robust_|memjrnl|yy|where|expr|resolve|lookupName|select|codeOne|sqlite3)"),
    ("HTTP (hyper, axum, tower)", r"hyper|axum|tower|\bhttp::|httparse|h2::"),
    ("tokio", r"tokio|mio::"),
    ("card-member's own code", r"card_member"),
    ("JSON", r"serde_json|serde::"),
    ("hashes and AES-GCM", r"sha|SHA|aes|AES|gcm|GCM|hmac|ghash|gfmul"),
    ("other Rust and AWS-LC", r"."),
]
shares = {name: 0.0 for name, _ in RULES}
for line in open(report):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    key = ("K:" if kind == "k" or "kernel" in dso else "") + sym
    for name, rule in RULES:
        if re.search(rule, key):
            shares[name] += pct
            break
total = sum(shares.values()) or 1.0
rsa = shares[RULES[0][0]] / total * cpu
print(f"| component | {workload} ms/req |")
print("|---|---|")
print(f"| **server CPU per request** (from /proc) | **{cpu:.3f}** |")
print(f"| {RULES[0][0]} | {rsa:.3f} |")
print(f"| **beyond the RSA** | **{cpu - rsa:.3f}** |")
for name, _ in RULES[1:]:
    print(f"| {name} | {shares[name] / total * cpu:.3f} |")
PY
