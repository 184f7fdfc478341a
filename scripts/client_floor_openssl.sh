#!/bin/sh
# The client's floor for the seed request with OpenSSL's own primitives in
# a tight loop (`openssl speed`), for BENCHMARKS.md's comparison with the
# SDK (crates/client/benches/prepare.rs): one RSA-2048 signature, two
# RSA-OAEP encryptions and one signature verification. `openssl speed` in
# OpenSSL 3.0 times signing and verifying only; an encryption under the
# public key is the same modular exponentiation (e = 65537) as a
# verification plus padding, so it is counted at the verification's time.
# Usage: scripts/client_floor_openssl.sh [CPU]   (pins to CPU, default 0)
set -eu
cpu="${1:-0}"
line=$(taskset -c "$cpu" openssl speed -seconds 3 rsa2048 2>/dev/null | grep '^rsa 2048 bits')
echo "$line" | awk '{
  sign_us = 1e6 / $6; verify_us = 1e6 / $7;
  printf "openssl %s: rsa2048 sign %.1f us, verify %.1f us\n", "'"$(openssl version | cut -d" " -f2)"'", sign_us, verify_us;
  printf "seed request floor (sign + 2 encryptions + verify): %.1f us\n", sign_us + 3 * verify_us
}'
