#!/usr/bin/env bash
# Builds and runs the libFuzzer targets. Usage: scripts/fuzz.sh [http|agent-output] [RUNS]
# RUNS defaults to 10,000,000 executions; crashes are written to fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
target="${1:-http}"
runs="${2:-10000000}"
out=.build/fuzz
mkdir -p "$out" fuzz/artifacts
case "$target" in
  http)
    swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name HTTPFuzz \
      Sources/Shared/HTTP/HTTPRequest.swift Sources/Shared/HTTP/HTTPParser.swift fuzz/HTTPParserFuzz.swift \
      -o "$out/http-parser"
    corpus=fuzz/corpus/http ;;
  agent-output)
    # The Shared module's sources, compiled into the fuzzer (the C fences through their module maps).
    mapfile -t sources < <(find Sources/Shared -name '*.swift' | sort)
    swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name SharedFuzz \
      -I Sources/CSQLite -I Sources/CSystemd -I Sources/CLinux "${sources[@]}" fuzz/AgentOutputFuzz.swift \
      -lsqlite3 -lsystemd -o "$out/agent-output"
    corpus=fuzz/corpus/agent-output ;;
  *) echo "usage: $0 [http|agent-output] [RUNS]" >&2; exit 2 ;;
esac
work=$(mktemp -d)
cp "$corpus"/* "$work"/
"$out/${target/http/http-parser}" -runs="$runs" -max_len=4096 -artifact_prefix=fuzz/artifacts/ -print_final_stats=1 "$work" 2>&1 | tail -n 25
rm -rf "$work"
