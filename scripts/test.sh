#!/usr/bin/env bash
# The one command that passes the tests on a fresh machine: installs what they
# need (ClickHouse from Debian's packages when run as root, the Python test
# dependencies), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clickhouse-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing clickhouse-server from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      clickhouse-server clickhouse-client >/dev/null
  else
    echo "note: clickhouse-server is missing and this is not root: the ClickHouse tests will be skipped" >&2
  fi
fi

if command -v npm >/dev/null 2>&1; then
  npm ci --prefix examples/node --no-audit --no-fund --silent
else
  echo "note: npm is missing: the Node example's test will be skipped" >&2
fi

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e '.[test]'
exec python3 -m pytest -q "$@"
