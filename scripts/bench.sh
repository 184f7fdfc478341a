#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, in one command: the criterion micro-benchmarks, then the load
# benchmark (release build) on SQLite and PostgreSQL. Results go to target/bench-results/.
# Takes about 10 minutes on 2 cores; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-results
mkdir -p "$out"

cargo bench -p card-member-protocol -p card-member-client -p card-member-server 2>/dev/null \
  | grep -E '^(string_to_sign|rsa2048|oaep|validate|client|server in-process)|time:' | tee "$out/criterion.txt"

cargo build --release -q
bench=target/release/card-member
run() { name=$1; shift; echo "== $name: $*" >&2; "$bench" bench "$@" 2>/dev/null | tee "$out/$name.json"; }

run seed-saturation --workload seed --duration 10
rate=$(python3 -c "import json; print(int(json.load(open('$out/seed-saturation.json'))['summary']['throughput_per_s']['median'] / 2))")
run seed-half-rate --workload seed --rate "$rate" --duration 10
run minimal-saturation --workload minimal --duration 10
run get-saturation --workload get --duration 10
run seed-100k-cards --workload seed --duration 5 --extra-cards 100000

# PostgreSQL: a throwaway cluster on loopback, as the postgres user, data outside /root.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/card-member-bench-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_dir"
trap 'as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
psql -X -q "postgres://postgres@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE bench"
run seed-postgres --workload seed --duration 10 --database-url "postgres://postgres@127.0.0.1:$pg_port/bench"
