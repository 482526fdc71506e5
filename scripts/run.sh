#!/usr/bin/env bash
# `make run`: the daemon on examples/quickstart.toml, with something to back
# up. Installs what is missing (scripts/setup.sh), starts a loopback
# redis-server on 127.0.0.1:6390 (data dir var/demo-redis, no persistence)
# unless one already answers there, fills it once with demo data of every
# type, prints the next commands, runs the daemon in the foreground, and
# stops the redis-server it started when the daemon exits.
# `make run` builds first; run alone, this expects target/release/redback
# and target/plugins (`make build`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

port=6390
redis_dir="var/demo-redis"
config="examples/quickstart.toml"
redback="target/release/redback"
api="http://127.0.0.1:7480"

scripts/setup.sh

if [[ ! -x "$redback" || ! -f target/plugins/storage-local/plugin.toml ]]; then
    echo "run: $redback or target/plugins is missing; run \`make run\` (or \`make build\`) first" >&2
    exit 1
fi

redis() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }

redis_pid=""
daemon_pid=""
stop_redis() {
    if [[ -n "$redis_pid" ]] && kill -0 "$redis_pid" 2>/dev/null; then
        echo "run: stopping the demo redis-server (pid $redis_pid)"
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    redis_pid=""
}
trap stop_redis EXIT

# A redis-server left answering on the port (a run whose script was
# killed, or one started by hand) is reused as it is.
if [[ "$(redis ping 2>/dev/null)" == "PONG" ]]; then
    echo "run: reusing the redis-server that answers on 127.0.0.1:$port"
else
    mkdir -p "$redis_dir"
    # No RDB or AOF of its own: the demo data lives in memory and comes
    # back from backups. `dir` is where a handoff restore's replica writes
    # the RDB it receives, as dump.rdb; redis-server would load that file
    # at start, so a new server starts empty only without it.
    rm -f "$redis_dir"/*.rdb
    redis-server --bind 127.0.0.1 --port "$port" --dir "$redis_dir" \
        --save '' --appendonly no --daemonize no \
        --logfile redis.log >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
        [[ "$(redis ping 2>/dev/null)" == "PONG" ]] && break
        if ! kill -0 "$redis_pid" 2>/dev/null; then
            redis_pid=""
            echo "run: redis-server did not start on 127.0.0.1:$port; its log:" >&2
            tail -n 20 "$redis_dir/redis.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    [[ "$(redis ping 2>/dev/null)" == "PONG" ]] || { echo "run: redis-server on 127.0.0.1:$port does not answer PING" >&2; exit 1; }
    echo "run: started redis-server on 127.0.0.1:$port (pid $redis_pid, dir $redis_dir, no persistence)"
fi

# Demo data, once per server: the marker key says it is there. Written as
# RESP by python3 (stdlib only) into `redis-cli --pipe`; the same seed
# gives the same data every time.
if [[ "$(redis exists demo:loaded)" == "1" ]]; then
    echo "run: demo data already loaded ($(redis dbsize) keys in db 0)"
else
    python3 - <<'PY' > "$redis_dir/demo.resp"
import random
import sys

out = sys.stdout.buffer
rnd = random.Random(6390)


def cmd(*args):
    parts = [str(a).encode() for a in args]
    out.write(b"*%d\r\n" % len(parts))
    for p in parts:
        out.write(b"$%d\r\n%s\r\n" % (len(p), p))


words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
cities = ["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu"]

# 1500 strings: counters, JSON blobs; 300 sessions with a TTL.
for i in range(1000):
    cmd("SET", f"counter:{i}", rnd.randrange(1_000_000))
for i in range(200):
    cmd("SET", f"page:{i}", '{"title":"%s","views":%d}' % (rnd.choice(words), rnd.randrange(10_000)))
for i in range(300):
    cmd("SET", f"session:{i:04d}", "%032x" % rnd.getrandbits(128), "EX", 3600 + rnd.randrange(86_400))
# 1000 hashes: user profiles.
for i in range(1000):
    cmd("HSET", f"user:{i}", "name", f"user{i}", "city", rnd.choice(cities),
        "visits", rnd.randrange(500), "email", f"user{i}@example.com")
# 100 lists: job queues of 20 entries.
for i in range(100):
    cmd("RPUSH", f"queue:{i}", *(f"job-{i}-{j}" for j in range(20)))
# 300 sets: tags; 50 of them expire in a day.
for i in range(300):
    cmd("SADD", f"tags:{i}", *rnd.sample(words, 4))
    if i < 50:
        cmd("EXPIRE", f"tags:{i}", 86_400)
# 51 sorted sets: leaderboards.
for i in range(50):
    args = []
    for j in range(50):
        args += [rnd.randrange(10_000), f"player:{j}"]
    cmd("ZADD", f"leaderboard:{i}", *args)
args = []
for j in range(2000):
    args += [rnd.randrange(1_000_000), f"player:{j}"]
cmd("ZADD", "leaderboard:global", *args)
# A stream of 1000 events with a consumer group.
for j in range(1000):
    cmd("XADD", "events", "*", "type", rnd.choice(["click", "view", "buy"]),
        "user", rnd.randrange(1000))
cmd("XGROUP", "CREATE", "events", "billing", "0")
# A few keys in db 1, for restores of one db.
cmd("SELECT", 1)
for i in range(100):
    cmd("SET", f"cache:{i}", rnd.choice(words), "EX", 7200)
cmd("SELECT", 0)
cmd("SET", "demo:loaded", "scripts/run.sh")
PY
    result="$(redis --pipe < "$redis_dir/demo.resp")"
    rm -f "$redis_dir/demo.resp"
    if ! grep -q "errors: 0," <<<"$result"; then
        echo "run: loading the demo data failed: $result" >&2
        exit 1
    fi
    echo "run: loaded demo data: $(redis dbsize) keys in db 0 (strings, hashes, lists, sets, sorted sets, a stream; some with a TTL), $(redis -n 1 dbsize) in db 1"
fi

if [[ -n "${REDBACK_API_TOKEN:-}" ]]; then
    token_line="TOKEN=\"\$REDBACK_API_TOKEN\"     # the daemon uses REDBACK_API_TOKEN from your environment"
else
    token_line="TOKEN=\$(cat var/redback/api-token)   # generated by the daemon on its first start"
fi
cat <<EOF
run: starting the daemon: $redback serve --config $config
     REST API on $api; backups under var/backups, catalog in var/redback.
     In another shell (README.md, "Run the daemon", has the rest):
       $token_line
       curl -s $api/health
       curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
            -d '{"remark":"first"}' $api/instances/demo/backups
       curl -s -H "Authorization: Bearer \$TOKEN" $api/instances/demo/backups
     Ctrl-C stops the daemon$( [[ -n "$redis_pid" ]] && echo " and the demo redis-server" || true ).
EOF

# The daemon runs as a child, so this script is there to stop the
# redis-server when it exits; Ctrl-C or SIGTERM to the script is passed on.
"$redback" serve --config "$config" &
daemon_pid=$!
trap 'kill -TERM "$daemon_pid" 2>/dev/null || true' INT TERM HUP
status=0
while kill -0 "$daemon_pid" 2>/dev/null; do
    wait "$daemon_pid" && status=0 || status=$?
done
exit "$status"
