#!/usr/bin/env bash
# The one command that passes the tests on a fresh machine: installs what they
# need (ClickHouse from Debian's packages when run as root, the Python test
# dependencies), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: ClickHouse (a real database for the tests), Ruby's and Go's gRPC (the examples).
need=""
command -v clickhouse-server >/dev/null 2>&1 || need="$need clickhouse-server clickhouse-client"
command -v grpc_tools_ruby_protoc >/dev/null 2>&1 || need="$need ruby-grpc ruby-grpc-tools"
{ command -v go && command -v protoc-gen-go && [ -d /usr/share/gocode/src/google.golang.org/genproto ]; } \
  >/dev/null 2>&1 || need="$need golang-go protobuf-compiler golang-google-grpc-dev golang-goprotobuf-dev \
  golang-google-protobuf-dev golang-google-genproto-dev protoc-gen-go-1-3"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing from Debian's packages:$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  else
    echo "note: not root, so$need stay missing: their tests will be skipped" >&2
  fi
fi

if command -v npm >/dev/null 2>&1; then
  npm ci --prefix examples/node --no-audit --no-fund --silent
  npm ci --prefix tools/buf --no-audit --no-fund --silent  # buf: lint and breaking checks of protos/
else
  echo "note: npm is missing: the Node example's and buf's tests will be skipped" >&2
fi

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest -q "$@"
