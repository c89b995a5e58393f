#!/usr/bin/env bash
# The soak and abuse suite: one command.
#
#   scripts/soak.sh                               # short form (CI): ~2 minutes, debug build
#   scripts/soak.sh --long                        # 10,000 requests per path, 60 s flood (release)
#   scripts/soak.sh --durability normal           # SQLite with --durability normal (default full)
#   scripts/soak.sh --postgres postgres://postgres@127.0.0.1:5432/test
#   scripts/soak.sh --release | --debug           # choose the build (short: debug, long: release)
#   SOAK_SEED=123 scripts/soak.sh                 # replay a run (the seed is printed)
#   SOAK_ARGS='--paths kfaccount --phases fuzz' scripts/soak.sh   # more kefu-soak flags
#
# Builds `kefu` and `kefu-soak` (reusing target/); starts `kefu serve` on a fresh store
# (an SQLite file in a temporary directory, or a fresh schema of the PostgreSQL database)
# with short header and idle timeouts; creates an app with a known secret, a kf account
# and a token through the admin and WeChat APIs; then runs kefu-soak against it: fuzz of
# every WeChat path, slowloris and idle connections, a flood of failing calls with the
# server's RSS and store size watched, and a search for the app's secret everywhere the
# server writes. Exits non-zero on any violation; the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

LONG=0
DURABILITY=full
PG_URL=""
PROFILE=""
while [ $# -gt 0 ]; do
    case $1 in
        --long) LONG=1 ;;
        --durability) DURABILITY=${2:?--durability needs full or normal}; shift ;;
        --postgres) PG_URL=${2:?--postgres needs a URL}; shift ;;
        --release) PROFILE=release ;;
        --debug) PROFILE=debug ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case $DURABILITY in full|normal) ;; *) echo "soak: --durability is full or normal" >&2; exit 2 ;; esac
if [ -z "$PROFILE" ]; then
    if [ "$LONG" = 1 ]; then PROFILE=release; else PROFILE=debug; fi
fi
if [ "$LONG" = 1 ]; then
    PER_PATH=${SOAK_PER_PATH:-10000}; FLOOD_SECS=${SOAK_FLOOD_SECS:-60}
else
    PER_PATH=${SOAK_PER_PATH:-1000}; FLOOD_SECS=${SOAK_FLOOD_SECS:-10}
fi
HEADER_TIMEOUT=2
IDLE_TIMEOUT=3
LOG_MEMORY_MB=16
LOG_DISK_MB=${SOAK_LOG_DISK_MB:-64}

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
if [ -n "$PG_URL" ]; then command -v psql >/dev/null || { echo "soak: --postgres needs psql" >&2; exit 2; }; fi

if [ "$PROFILE" = release ]; then
    cargo build --release -q -p kefu -p kefu-bench
else
    cargo build -q -p kefu -p kefu-bench
fi
KEFU=${CARGO_TARGET_DIR:-target}/$PROFILE/kefu
SOAK=${CARGO_TARGET_DIR:-target}/$PROFILE/kefu-soak

# Thousands of connections on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

WORK=$(mktemp -d)
SERVER_PID=""
PG_SCHEMA=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_SCHEMA" ]; then
        psql "$PG_URL" -Atqc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/kefu.log" ]; then
        echo "soak: the server's last output:" >&2
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
    echo "soak: no free port" >&2; return 1
}
random_text() { # length characters
    local text=""
    while [ ${#text} -lt "$1" ]; do text+=$(head -c 256 /dev/urandom | LC_ALL=C tr -dc "$2"); done
    echo "${text:0:$1}"
}
random_alnum() { random_text "$1" 'A-Za-z0-9'; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN="soak-admin-$(random_alnum 24)"
SECRET="Soak$(random_alnum 28)"

STORE_ARGS=()
if [ -n "$PG_URL" ]; then
    PG_SCHEMA="kefu_soak_$(random_text 12 'a-z0-9')"
    psql "$PG_URL" -Atqc "SET client_min_messages = warning; CREATE SCHEMA $PG_SCHEMA" >/dev/null
    case $PG_URL in *\?*) sep='&' ;; *) sep='?' ;; esac
    DATABASE_URL="$PG_URL${sep}options=-c%20search_path%3D$PG_SCHEMA"
    STORE_ARGS=(--postgres-url "$PG_URL" --pg-schema "$PG_SCHEMA")
    STORE_DESC="PostgreSQL schema $PG_SCHEMA"
else
    DATABASE_URL="$WORK/kefu.db"
    STORE_ARGS=(--sqlite "$DATABASE_URL")
    STORE_DESC="SQLite, durability $DURABILITY"
fi

SERVE=("$KEFU" serve --no-demo --admin-token "$ADMIN" --listen "127.0.0.1:$PORT"
       --database-url "$DATABASE_URL" --durability "$DURABILITY"
       --header-timeout "$HEADER_TIMEOUT" --idle-timeout "$IDLE_TIMEOUT"
       --request-log-memory-mb "$LOG_MEMORY_MB" --request-log-disk-mb "$LOG_DISK_MB")
echo "soak: ${SERVE[*]/$ADMIN/<admin token>}"
"${SERVE[@]}" >"$WORK/kefu.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 1000); do
    curl -sf "$BASE/kefu/v1/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "soak: kefu serve exited" >&2; exit 1; }
    sleep 0.01
done
curl -sf "$BASE/kefu/v1/health" >/dev/null || { echo "soak: kefu serve does not answer" >&2; exit 1; }

# The app whose secret the secrets phase hunts for, an account, and a token.
APPID=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$BASE/kefu/v1/apps" -d '{
    "wechat_id":"soak","secret":"'"$SECRET"'","quotas":{
    "/customservice/kfaccount/update":{"daily":1000000000},
    "/customservice/kfaccount/add":{"daily":1000000000},
    "/cgi-bin/customservice/getkflist":{"daily":1000000000},
    "/cgi-bin/token":{"daily":1000000000}}}' | sed -E 's/.*"appid":"([^"]*)".*/\1/')
TOKEN=$(curl -sf "$BASE/cgi-bin/token?grant_type=client_credential&appid=$APPID&secret=$SECRET" \
    | sed -E 's/.*"access_token":"([^"]*)".*/\1/')
KF_ACCOUNT=soak1@soak
ADDED=$(curl -sf -X POST "$BASE/customservice/kfaccount/add?access_token=$TOKEN" \
    -d '{"kf_account":"'"$KF_ACCOUNT"'","nickname":"soak"}')
case $ADDED in *'"errcode":0'*) ;; *) echo "soak: setup failed: $ADDED" >&2; exit 1 ;; esac

SEED=${SOAK_SEED:-$(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM ))}
# shellcheck disable=SC2206
EXTRA=(${SOAK_ARGS:-})
RUN=("$SOAK" --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --appid "$APPID" --token "$TOKEN"
     --kf-account "$KF_ACCOUNT" "${STORE_ARGS[@]}" --seed "$SEED"
     --per-path "$PER_PATH" --flood-secs "$FLOOD_SECS"
     --header-timeout "$HEADER_TIMEOUT" --idle-timeout "$IDLE_TIMEOUT"
     --log-memory-mb "$LOG_MEMORY_MB" --log-disk-mb "$LOG_DISK_MB"
     --server-log "$WORK/kefu.log" "${EXTRA[@]}")
echo "soak: $STORE_DESC, $([ "$LONG" = 1 ] && echo long || echo short) form, $PROFILE build, seed $SEED"
echo "soak: KEFU_ADMIN_TOKEN=… SOAK_SECRET=… ${RUN[*]/$TOKEN/<token>}"
STARTED=$(date +%s)
STATUS=0
KEFU_ADMIN_TOKEN=$ADMIN SOAK_SECRET=$SECRET "${RUN[@]}" || STATUS=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "soak: VIOLATION: kefu serve is no longer running" >&2
    STATUS=1
fi
echo "soak: $STORE_DESC: kefu-soak exited $STATUS after $(( $(date +%s) - STARTED )) s (seed $SEED)"
exit "$STATUS"
