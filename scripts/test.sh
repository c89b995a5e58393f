#!/usr/bin/env bash
# The whole test suite. Installs the third-party WeChat clients that the client tests
# drive (wechatpy from PyPI, node wechat-api from npm) when they are missing, then runs
# the doc tests and every other Rust test with cargo-nextest (cargo test when nextest is absent).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import wechatpy' >/dev/null 2>&1; then
    echo "test.sh: installing wechatpy (tests/clients/requirements.txt)"
    python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt \
        || echo "test.sh: WARNING: could not install wechatpy; its client test will say so" >&2
fi
if [ ! -d tests/clients/node_modules ]; then
    echo "test.sh: installing the node client (tests/clients/package-lock.json)"
    npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error \
        || echo "test.sh: WARNING: could not install the node client; its client test will say so" >&2
fi

cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --all-targets --no-fail-fast "$@"
fi
