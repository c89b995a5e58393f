#!/usr/bin/env bash
# Schemathesis against a running kefu, driven by the OpenAPI document it serves.
#
#   scripts/schemathesis.sh                    # ~100 cases per operation, debug build
#   SCHEMATHESIS_EXAMPLES=500 scripts/schemathesis.sh
#   SCHEMATHESIS_SEED=123 scripts/schemathesis.sh   # replay a run (the seed is printed)
#   KEFU_ADMIN_TOKEN=… scripts/schemathesis.sh      # the admin token (a random one otherwise)
#
# Installs Schemathesis (a pinned version, from PyPI) into a virtualenv under
# ~/.cache/kefu once; builds `kefu`; starts `kefu serve` on a fresh SQLite store in a
# temporary directory on a free port; waits for /kefu/v1/readyz; then runs Schemathesis
# on every operation of /kefu/v1/openapi.json with the checks: not a server error,
# status code, content type and response schema conformance (a WeChat answer is HTTP 200
# with its result or WeChat's envelope). Exits non-zero on any failure; the server is
# stopped on exit. The live request log (a stream that never ends by itself) is left out.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/kefu/schemathesis-$VERSION}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-100}
SEED=${SCHEMATHESIS_SEED:-$RANDOM}

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "schemathesis: installing schemathesis $VERSION into $VENV" >&2
    if ! python3 -m venv "$VENV"; then
        # Debian's python3 keeps venv in a package of its own.
        apt-get update -qq && apt-get install -y -qq python3-venv
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build -q -p kefu
KEFU=${CARGO_TARGET_DIR:-target}/debug/kefu

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/kefu.log" ]; then
        echo "schemathesis: the server's last output:" >&2
        grep -v '^$' "$WORK/kefu.log" | tail -n 20 >&2 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    done
    echo "schemathesis: no free port" >&2; return 1
}

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN=${KEFU_ADMIN_TOKEN:-st-$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')}

KEFU_ADMIN_TOKEN="$ADMIN" "$KEFU" serve --listen "127.0.0.1:$PORT" \
    --database-url "$WORK/kefu.db" >"$WORK/kefu.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -sf "$BASE/kefu/v1/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis: kefu serve exited" >&2; exit 1; }
    sleep 0.1
done
curl -sf "$BASE/kefu/v1/readyz" >/dev/null || { echo "schemathesis: kefu serve is not ready" >&2; exit 1; }

echo "schemathesis: $EXAMPLES cases per operation, seed $SEED, against $BASE" >&2
"$VENV/bin/schemathesis" run "$BASE/kefu/v1/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $ADMIN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --mode all \
    --max-examples "$EXAMPLES" \
    --exclude-path /kefu/v1/requests/stream \
    --seed "$SEED" \
    --workers 2 \
    --no-color \
    --report junit --report-dir "$WORK/report" \
    --suppress-health-check all
