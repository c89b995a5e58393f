#!/usr/bin/env bash
# The whole test suite. Installs the third-party WeChat clients that the client tests
# drive (wechatpy from PyPI, node wechat-api from npm) when they are missing, then runs
# the doc tests and every other Rust test with cargo-nextest (cargo test when nextest is absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import wechatpy, cryptography' >/dev/null 2>&1; then
    echo "test.sh: installing wechatpy (tests/clients/requirements.txt)"
    python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt \
        || echo "test.sh: WARNING: could not install wechatpy; its client test will say so" >&2
fi
if [ ! -d tests/clients/node_modules ]; then
    echo "test.sh: installing the node client (tests/clients/package-lock.json)"
    npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error \
        || echo "test.sh: WARNING: could not install the node client; its client test will say so" >&2
fi

# The PostgreSQL half of the suite (store conformance, multi-instance, outage) runs
# against KEFU_TEST_POSTGRES_URL, each test in a fresh schema. Default: the local
# server, when it answers.
if [ -z "${KEFU_TEST_POSTGRES_URL:-}" ]; then
    default_url="postgres://postgres@127.0.0.1:5432/test"
    if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
        export KEFU_TEST_POSTGRES_URL="$default_url"
    else
        echo "test.sh: WARNING: no PostgreSQL at 127.0.0.1:5432 and KEFU_TEST_POSTGRES_URL unset:" >&2
        echo "test.sh: WARNING: the PostgreSQL tests will say SKIPPED (and fail under CI)" >&2
    fi
fi
echo "test.sh: PostgreSQL tests: ${KEFU_TEST_POSTGRES_URL:-SKIPPED (not configured)}"

cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --all-targets --no-fail-fast "$@"
fi
