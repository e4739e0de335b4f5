#!/usr/bin/env bash
# Start or stop the embedded local Valohai backend in the background (`make backend`, `make backend-stop`).
# Data lives in .local-valohai/ (SQLite + file store); the token is in .local-valohai/token.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PORT="${LOCAL_VALOHAI_PORT:-8040}"
DATA="${LOCAL_VALOHAI_DATA:-$ROOT/.local-valohai}"
WORKERS="${LOCAL_VALOHAI_WORKERS:-$(nproc)}"
PIDFILE="$DATA/server.pid"
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-start}" in
  start)
    if running; then echo "local backend already running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$PORT"; exit 0; fi
    mkdir -p "$DATA"
    (umask 077; : >> "$DATA/server.log")   # the log holds the token printed at start-up: owner only
    nohup .venv/bin/local-valohai serve --port "$PORT" --data-dir "$DATA" --workers "$WORKERS" \
      > "$DATA/server.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 100); do
      code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v0/users/me/" || true)"
      [ "$code" = 401 ] || [ "$code" = 200 ] && break
      running || { echo "the local backend failed to start; see $DATA/server.log:" >&2; tail -20 "$DATA/server.log" >&2; exit 1; }
      sleep 0.2
    done
    echo "local backend running on http://127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data in $DATA, log $DATA/server.log)"
    ;;
  stop)
    if running; then kill "$(cat "$PIDFILE")"; for _ in $(seq 1 50); do running || break; sleep 0.2; done; fi
    rm -f "$PIDFILE"; echo "local backend stopped"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
