#!/usr/bin/env bash
# The benchmark harness: one command.
#
#   scripts/bench.sh                      # 3 interleaved rounds of 10 s per server and load
#   ROUNDS=5 DURATION=20s scripts/bench.sh
#   LONG=0 scripts/bench.sh               # without the long run (default LONG=120 seconds)
#   METRICS_AB=1 ROUNDS=4 scripts/bench.sh  # what metrics cost: see below
#
# Builds the release binaries; starts the floor (a bare hyper server answering
# {"errcode":0,"errmsg":"ok"}), kefu on SQLite with --durability full, kefu on SQLite
# with --durability normal, and kefu on PostgreSQL when one answers (BENCH_POSTGRES_URL,
# default postgres://postgres@127.0.0.1:5432/test; a fresh schema each round); creates an app with 100 kf accounts and a token on each kefu;
# drives every server with wrk (2 threads, 64 connections) on the same loads — update of a
# random account, getkflist (100 accounts), /cgi-bin/token — interleaving the servers in
# every round (each run after the disk is quiet: sync, and a PostgreSQL CHECKPOINT);
# checks after every kefu run that no answer was anything but errcode 0 and that every
# account's nickname is one the run sent (and had acknowledged); records peak RSS and
# cold start; then the long run: the update load on one instance of each SQLite durability
# for LONG seconds without a pause, in slices of 10 s, failing when the last slice's
# throughput is not within 10% of the first's or any slice's p99 is over 10 ms; and
# writes the table to BENCHMARKS.md, followed by scripts/bench/bounds.md (what bounds
# each figure) and scripts/bench/metrics.md (what metrics cost).
#
# METRICS_AB=1 measures what the metrics cost instead: each SQLite kefu runs twice, with
# metrics and with --no-metrics, in the same rounds (which of the two goes first swaps
# every round, so an odd ROUNDS is raised by one), on the update and getkflist loads,
# without the long run; the table of both ratios to the floor goes to
# scripts/bench/metrics.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
LONG=${LONG:-120}
SLICE=10
THREADS=2
CONNECTIONS=64
ADMIN=bench-admin-token
SECRET=BenchSecret0123456
OUT=${OUT:-BENCHMARKS.md}
METRICS_AB=${METRICS_AB:-0}
LOADS=(update getkflist token)
if [ "$METRICS_AB" = 1 ]; then
    LONG=0
    LOADS=(update getkflist)
    # Each of the two goes first in as many rounds as the other.
    ROUNDS=$(( ROUNDS + ROUNDS % 2 ))
fi

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release -q -p kefu -p kefu-bench
KEFU=${CARGO_TARGET_DIR:-target}/release/kefu
FLOOR=${CARGO_TARGET_DIR:-target}/release/kefu-floor
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_health() { # url
    for _ in $(seq 1 500); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.01; done
    echo "bench: $1 did not answer" >&2; return 1
}

# --- servers ------------------------------------------------------------------------
declare -A PORT=([floor]=18000 [full]=18101 [normal]=18102 [pg]=18103 [full-nm]=18111 [normal-nm]=18112)
KEFUS=(full normal)
[ "$METRICS_AB" = 1 ] && KEFUS=(full full-nm normal normal-nm)
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_SCHEMA=kefu_bench
if [ "$METRICS_AB" = 1 ]; then
    : # SQLite only: the update path's cost, without PostgreSQL's round trips around it
elif command -v psql >/dev/null && psql "$PG_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    KEFUS+=(pg)
    case $PG_URL in *\?*) sep='&' ;; *) sep='?' ;; esac
    PG_SCHEMA_URL="$PG_URL${sep}options=-c%20search_path%3D$PG_SCHEMA"
else
    echo "bench: no PostgreSQL at $PG_URL: kefu on PostgreSQL is not measured" >&2
fi
declare -A TOKEN SUFFIX PID_OF

"$FLOOR" "127.0.0.1:${PORT[floor]}" >/dev/null & PIDS+=($!); PID_OF[floor]=$!
wait_health "http://127.0.0.1:${PORT[floor]}/"

start_kefu() { # name durability: a fresh store every time (a name ending in -nm: no metrics)
    local name=$1 port=${PORT[$1]} extra=()
    [[ $name == *-nm ]] && extra=(--no-metrics)
    [ -n "${PID_OF[$name]:-}" ] && { kill "${PID_OF[$name]}" 2>/dev/null || true; wait "${PID_OF[$name]}" 2>/dev/null || true; }
    local url="$WORK/$name.db"
    if [ "$name" = pg ]; then
        psql "$PG_URL" -Atqc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE; CREATE SCHEMA $PG_SCHEMA" >/dev/null
        url=$PG_SCHEMA_URL
    else
        rm -f "$WORK/$name.db" "$WORK/$name.db-wal" "$WORK/$name.db-shm"
    fi
    "$KEFU" serve --no-demo --listen "127.0.0.1:$port" --admin-token "$ADMIN" \
        --database-url "$url" --durability "$2" --pg-pool-size 8 "${extra[@]}" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!); PID_OF[$name]=$!
    wait_health "http://127.0.0.1:$port/kefu/v1/health"
}

setup_kefu() { # name: an app with 100 accounts, quotas out of the way, and a token
    local name=$1 base="http://127.0.0.1:${PORT[$1]}" appid
    SUFFIX[$name]=bench
    appid=$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" "$base/kefu/v1/apps" -d '{
        "wechat_id":"bench","secret":"'"$SECRET"'","quotas":{
        "/customservice/kfaccount/update":{"daily":1000000000},
        "/cgi-bin/customservice/getkflist":{"daily":1000000000},
        "/cgi-bin/token":{"daily":1000000000}}}' | sed -E 's/.*"appid":"([^"]*)".*/\1/')
    TOKEN[$name]=$(curl -sf "$base/cgi-bin/token?grant_type=client_credential&appid=$appid&secret=$SECRET" \
        | sed -E 's/.*"access_token":"([^"]*)".*/\1/')
    for i in $(seq 0 99); do
        curl -sf -X POST "$base/customservice/kfaccount/add?access_token=${TOKEN[$name]}" \
            -d "{\"kf_account\":\"k$i@bench\",\"nickname\":\"n$i\"}" >/dev/null
    done
    APPID_OF[$name]=$appid
}
declare -A APPID_OF

# Cold start: from spawn to the first answered request, on a fresh store.
cold_start_ms() {
    local port=18199 start end pid
    start=$(date +%s%N)
    "$KEFU" serve --no-demo --listen "127.0.0.1:$port" --admin-token "$ADMIN" \
        --database-url "$WORK/cold-$RANDOM.db" >/dev/null 2>&1 & pid=$!
    until curl -sf "http://127.0.0.1:$port/kefu/v1/health" >/dev/null 2>&1; do sleep 0.002; done
    end=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo $(( (end - start) / 1000000 ))
}
COLD=()
for _ in 1 2 3; do COLD+=("$(cold_start_ms)"); done


# --- runs ---------------------------------------------------------------------------
declare -A RESULTS  # "load server" -> lines "rps p50 p99"

to_ms() { # wrk latency like 1.23ms / 812.00us / 1.02s
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

# Before every run: what the previous runs left for the disk (dirty pages, PostgreSQL's
# buffers) is written first, so that no run's fsyncs wait behind another's write-back.
quiesce() {
    sync
    if [ -n "${PG_SCHEMA_URL:-}" ]; then psql "$PG_URL" -Atqc 'CHECKPOINT' >/dev/null; fi
}

run_wrk() { # load server run-id [duration key] -> appends to RESULTS, checks correctness
    local load=$1 server=$2 run=$3 base="http://127.0.0.1:${PORT[$2]}" out path script
    local token=${TOKEN[$server]:-none} duration=${4:-$DURATION} key=${5:-$1}
    # The long run's slices follow each other without a pause.
    [ -z "${4:-}" ] && quiesce
    case $load in
        update) script=scripts/bench/update.lua; path="" ;;
        getkflist) script=scripts/bench/get.lua; path="/cgi-bin/customservice/getkflist?access_token=$token" ;;
        token) script=scripts/bench/get.lua
               path="/cgi-bin/token?grant_type=client_credential&appid=${APPID_OF[$server]:-x}&secret=$SECRET" ;;
    esac
    out=$(KEFU_TOKEN=$token KEFU_SUFFIX=bench KEFU_RUN="$run" KEFU_PATH="$path" \
        wrk -t$THREADS -c$CONNECTIONS -d"$duration" --latency -s "$script" "$base")
    local rps p50 p99 failures
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    failures=$(awk '/^FAILURES/ {print $2}' <<<"$out")
    if [ "${failures:-1}" != 0 ] || grep -q "Non-2xx" <<<"$out"; then
        echo "bench: $load on $server: $failures answers were not errcode 0" >&2; echo "$out" >&2; exit 1
    fi
    if [ "$load" = update ] && [ "$server" != floor ]; then
        # Every account's nickname must be one this run sent — and, every answer having
        # been errcode 0, acknowledged.
        local list stale
        list=$(curl -sf "$base/cgi-bin/customservice/getkflist?access_token=$token")
        stale=$(grep -o '"kf_nick":"[^"]*"' <<<"$list" | grep -vc "\"kf_nick\":\"$run-" || true)
        if [ "$stale" != 0 ]; then
            echo "bench: after $load on $server, $stale accounts hold a nickname this run did not acknowledge" >&2
            exit 1
        fi
    fi
    RESULTS["$key $server"]+="$rps $p50 $p99"$'\n'
    printf '  %-9s %-7s %10s req/s  p50 %7s ms  p99 %7s ms\n' "$load" "$server" "$rps" "$p50" "$p99"
}

declare -A RSS=([full]=0 [normal]=0 [pg]=0)
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS"
    # Fresh servers each round: the token load mints a token per request and would
    # otherwise grow the next round's store.
    for name in "${KEFUS[@]}"; do
        durability=${name%-nm}; start_kefu "$name" "${durability/pg/full}"; setup_kefu "$name"
    done
    ORDER=("${KEFUS[@]}")
    if [ "$METRICS_AB" = 1 ] && [ $(( round % 2 )) = 0 ]; then
        ORDER=(full-nm full normal-nm normal)
    fi
    for load in "${LOADS[@]}"; do
        if [ "$load" = token ]; then
            # Peak RSS under update and getkflist (the token load keeps every token).
            for name in "${KEFUS[@]}"; do
                rss=$(peak_rss_kb "${PID_OF[$name]}")
                [ "$rss" -gt "${RSS[$name]}" ] && RSS[$name]=$rss
            done
        fi
        for server in floor "${ORDER[@]}"; do
            run_wrk "$load" "$server" "${load:0:1}$round"
        done
    done
done

# --- the long run: one instance each, LONG seconds of updates ------------------------
declare -A LONG_FIGURES LONG_RSS
LONG_FAILED=()
if [ "$LONG" -gt 0 ]; then
    # Alone on the machine: the rounds' servers are stopped (an idle one still purges
    # the tokens the token load minted).
    for name in "${KEFUS[@]}"; do
        kill "${PID_OF[$name]}" 2>/dev/null || true; wait "${PID_OF[$name]}" 2>/dev/null || true
        PID_OF[$name]=""
    done
    for name in full normal; do
        echo "long run: update on $name for ${LONG}s"
        start_kefu "$name" "$name"; setup_kefu "$name"; quiesce
        for slice in $(seq 1 $(( LONG / SLICE ))); do
            run_wrk update "$name" "l$slice" "${SLICE}s" long
        done
        LONG_RSS[$name]=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/${PID_OF[$name]}/status")
        LONG_FIGURES[$name]=$(printf '%s' "${RESULTS["long $name"]}" | awk -v name="$name" '
            NF { n++; rps[n] = $1; if ($3 > worst) worst = $3 }
            END { printf "%.0f %.0f %.3f %.2f", rps[1], rps[n], rps[n] / rps[1], worst }')
        read -r first last ratio worst <<<"${LONG_FIGURES[$name]}"
        echo "  long $name: first ${first} req/s, last ${last} req/s (${ratio}×), worst p99 ${worst} ms"
        awk -v r="$ratio" -v w="$worst" 'BEGIN { exit !(r >= 0.9 && w <= 10) }' || LONG_FAILED+=("$name")
    done
fi

RSS_FULL=$(awk -v k="${RSS[full]}" 'BEGIN { printf "%.1f", k / 1024 }')
RSS_NORMAL=$(awk -v k="${RSS[normal]}" 'BEGIN { printf "%.1f", k / 1024 }')
RSS_PG=$(awk -v k="${RSS[pg]}" 'BEGIN { printf "%.1f", k / 1024 }')

# --- the table ----------------------------------------------------------------------
median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR + 1) / 2; printf "%.2f", (a[int(m)] + a[int(m + 0.5)]) / 2 }'; }
column_of() { # load server column(1=rps 2=p50 3=p99)
    printf '%s' "${RESULTS["$1 $2"]}" | awk -v c="$3" 'NF { print $c }' | median
}
if [ "$METRICS_AB" = 1 ]; then
    {
        echo "## What metrics cost"
        echo
        echo "Measured by \`METRICS_AB=1 ROUNDS=$ROUNDS DURATION=$DURATION scripts/bench.sh\` on $(date -u +%Y-%m-%d),"
        echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)): each SQLite kefu with"
        echo "metrics (the default) and with \`--no-metrics\`, in the same rounds, the one that goes"
        echo "first swapping every round; medians over the rounds, ratios to the floor of the same table."
        echo
        echo "| load | store | with metrics req/s | ratio | without req/s | ratio | with ÷ without |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        for load in "${LOADS[@]}"; do
            floor=$(column_of "$load" floor 1)
            for durability in full normal; do
                with=$(column_of "$load" "$durability" 1)
                without=$(column_of "$load" "$durability-nm" 1)
                awk -v l="$load" -v d="$durability" -v a="$with" -v b="$without" -v f="$floor" 'BEGIN {
                    printf "| %s | SQLite, durability %s | %s | %.3f× | %s | %.3f× | %.3f |\n", l, d, a, a / f, b, b / f, a / b }'
            done
        done
        echo
        for name in full full-nm normal normal-nm; do
            printf '%s' "${RESULTS["update $name"]}" | awk -v s="$name" '
                NF { list = list sep $1; sep = ", " } END { printf "Update req/s in each round, %s: %s.\n", s, list }'
        done
        echo
        echo "Where the same server moves more from round to round than the two columns differ, this"
        echo "table bounds the cost rather than resolving it; the instructions a call costs with and"
        echo "without metrics, counted in \"What bounds these figures\", resolve it."
    } > scripts/bench/metrics.md
    cat scripts/bench/metrics.md
    echo "wrote scripts/bench/metrics.md"
    exit 0
fi
{
    echo "# Benchmarks"
    echo
    echo "Measured by \`scripts/bench.sh\` (ROUNDS=$ROUNDS, DURATION=$DURATION) on $(date -u +%Y-%m-%d)."
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)."
    echo "Load: \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` on the same machine, servers interleaved in"
    echo "every round; figures are medians over the rounds; ratios are to the floor server of the same"
    echo "table (a bare hyper server answering \`{\"errcode\":0,\"errmsg\":\"ok\"}\`)."
    echo
    echo "| load | server | req/s | ratio to floor | p50 ms | p99 ms |"
    echo "|---|---|---:|---:|---:|---:|"
    for load in update getkflist token; do
        floor=$(column_of "$load" floor 1)
        for server in floor "${KEFUS[@]}"; do
            rps=$(column_of "$load" "$server" 1)
            ratio=$(awk -v a="$rps" -v b="$floor" 'BEGIN { printf "%.2f×", a / b }')
            label=$server
            [ "$server" = full ] && label="kefu, SQLite, durability full"
            [ "$server" = normal ] && label="kefu, SQLite, durability normal"
            [ "$server" = pg ] && label="kefu, PostgreSQL (synchronous_commit on, pool 8)"
            echo "| $load | $label | $rps | $ratio | $(column_of "$load" "$server" 2) | $(column_of "$load" "$server" 3) |"
        done
    done
    echo
    for server in "${KEFUS[@]}"; do
        printf '%s' "${RESULTS["update $server"]}" | awk -v s="$server" '
            NF { list = list sep $3; sep = ", " } END { printf "Update p99 in each round, %s: %s ms.\n", s, list }'
    done
    echo
    echo "Peak RSS under the update and getkflist loads: ${RSS_FULL} MB (durability full), ${RSS_NORMAL} MB (normal)$([ "${RSS[pg]}" -gt 0 ] && echo ", ${RSS_PG} MB (PostgreSQL)")."
    echo "(Each server starts afresh every round: the token load mints a token per request, and"
    echo "kefu keeps every token until 7 days after it expires.)"
    echo "Cold start to the first answered request: ${COLD[*]} ms (three fresh starts)."
    if [ "${RSS[pg]}" -gt 0 ]; then
        echo "PostgreSQL: $(psql "$PG_URL" -Atqc 'SHOW server_version') on the same machine, synchronous_commit $(psql "$PG_URL" -Atqc 'SHOW synchronous_commit'), pool of 8."
    else
        echo "PostgreSQL: not measured (none answered at the harness's URL)."
    fi
    echo
    if [ "$LONG" -gt 0 ]; then
        echo "Long run: the update load on one instance for ${LONG} s, in ${SLICE} s slices back to back"
        echo "(no pause, no restart); throughput of each slice, req/s:"
        echo
        echo "| server | slices | first | last | last ÷ first | worst p99 ms | RSS after |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        for name in full normal; do
            read -r first last ratio worst <<<"${LONG_FIGURES[$name]}"
            slices=$(printf '%s' "${RESULTS["long $name"]}" | awk 'NF { printf "%s%.0f", sep, $1; sep = ", " }')
            echo "| kefu, SQLite, durability $name | $slices | $first | $last | ${ratio}× | $worst | ${LONG_RSS[$name]} MB |"
        done
        echo
    fi
    echo "After every kefu update run the harness checked that every answer was errcode 0 and that"
    echo "every account's nickname was one that run had sent and had acknowledged."
    for part in scripts/bench/bounds.md scripts/bench/metrics.md; do
        if [ -f "$part" ]; then
            echo
            cat "$part"
        fi
    done
} > "$OUT"
echo "wrote $OUT"
if [ "${#LONG_FAILED[@]}" -gt 0 ]; then
    echo "bench: the long run slowed down or stalled on: ${LONG_FAILED[*]}" >&2
    exit 1
fi
