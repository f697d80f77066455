#!/usr/bin/env bash
# The one command that passes the tests on a fresh machine: installs what they
# need (ClickHouse and the examples' toolchains from Debian's packages when run
# as root, the examples' dependencies, the Python test dependencies), then runs
# pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: ClickHouse (a real database for the tests), Ruby's gRPC, protoc and the well-known types'
# .proto files (the Go and Ruby examples' stubs),
# Maven, a JDK and protoc-gen-grpc-java (the Java example's service stubs: Maven Central serves no executable
# of it here). Go itself (>= 1.26, for the Go example's module) comes with the machine.
need=""
command -v clickhouse-server >/dev/null 2>&1 || need="$need clickhouse-server clickhouse-client"
command -v grpc_tools_ruby_protoc >/dev/null 2>&1 || need="$need ruby-grpc ruby-grpc-tools"
command -v protoc >/dev/null 2>&1 || need="$need protobuf-compiler"
# The well-known types (google/protobuf/struct.proto, ...) that protos/ imports: protoc alone does not ship them.
[ -e /usr/include/google/protobuf/struct.proto ] || need="$need libprotobuf-dev"
command -v mvn >/dev/null 2>&1 || need="$need maven"
command -v javac >/dev/null 2>&1 || need="$need default-jdk-headless"
command -v grpc_java_plugin >/dev/null 2>&1 || need="$need protobuf-compiler-grpc-java-plugin"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing from Debian's packages:$need" >&2
    # shellcheck source=scripts/apt_wait.sh
    . scripts/apt_wait.sh
    apt_wait update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt_wait install -y -qq --no-install-recommends $need >/dev/null
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

# The examples' dependencies, into the caches their tools keep (~/.m2, the Go module cache): the tests' builds
# then download nothing and, on a machine that built before, recompile nothing.
if command -v mvn >/dev/null 2>&1 && command -v grpc_java_plugin >/dev/null 2>&1; then
  mvn -B -q -f examples/java/pom.xml package -Dgrpc.java.plugin="$(command -v grpc_java_plugin)"
fi
if command -v go >/dev/null 2>&1; then
  (cd examples/go && go mod download)
else
  echo "note: go is missing: the Go example cannot be built" >&2
fi

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
# Builds the native transcoder too (native/, Rust) where cargo is there: a failed build falls back to Python,
# so with cargo present a missing extension is an error here, not a silently slower bridge.
python3 -m pip install -q -e '.[test]'
if command -v cargo >/dev/null 2>&1; then
  python3 -c "import bridge._native" || { echo "cargo is here but bridge._native did not build" >&2; exit 1; }
fi
# The pure path as well: the transcode-level tests, and end to end every dialect (the conformance suite, each
# dialect's and the values' tests), fan-out, delivery, the spool and ClickHouse. The whole suite then runs with
# the native transcoder.
INGEST_BRIDGE_PURE=1 python3 -m pytest -q -p no:cacheprovider tests/test_transcode.py tests/test_fuzz.py \
  tests/test_decode.py tests/test_conformance.py tests/test_dialect_*.py tests/test_values.py \
  tests/test_values_json.py tests/test_descriptor_set.py tests/test_fanout.py tests/test_fanout_spool.py \
  tests/test_delivery.py tests/test_delivery_promises.py tests/test_spool.py tests/test_clickhouse.py \
  tests/test_service.py tests/test_send.py
exec python3 -m pytest -q "$@"
