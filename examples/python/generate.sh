#!/usr/bin/env bash
# Generates the Python client (messages + gRPC stubs) from proto/ with a plain protoc.
# Usage: examples/python/generate.sh OUTDIR   (Debian: apt-get install protobuf-compiler protobuf-compiler-grpc)
set -euo pipefail
mkdir -p "${1:?usage: $0 OUTDIR}"
out="$(cd "$1" && pwd)"
cd "$(dirname "$0")/../.."
protoc -I proto --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(which grpc_python_plugin)" proto/kms/v1/*.proto
echo "generated into $out"
