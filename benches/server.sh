# Sourced by the benchmark scripts: a scratch folder $work (removed at exit)
# and start_server, which starts a release `voxgate serve` with the default
# offline agent on free loopback ports, its records and recordings in $work,
# logging to $work/server.log, stopped
# at exit. Extra VOXGATE_* settings may be exported before it. It sets $http
# (its HTTP port) and $server (its pid). A script may define keep_results,
# run at exit before $work goes, to copy what it wants kept.

work=$(mktemp -d)
server=""
cleanup() {
  if declare -F keep_results > /dev/null; then keep_results || true; fi
  if [ -n "$server" ]; then kill "$server" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_$1); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

start_server() {
  http=$(free_port STREAM)
  VOXGATE_HTTP__LISTEN=127.0.0.1:$http VOXGATE_STORAGE__RECORDINGS_DIR="${VOXGATE_STORAGE__RECORDINGS_DIR:-$work/recordings}" \
  VOXGATE_STORAGE__DATABASE_URL="sqlite://$work/voxgate.db" \
  VOXGATE_LOG__FILTER=${VOXGATE_LOG__FILTER:-warn} \
    "${CARGO_TARGET_DIR:-target}/release/voxgate" serve --config config.toml 2> "$work/server.log" &
  server=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$http/healthz" > /dev/null && return 0
    sleep 0.5
  done
  echo "the server did not start; see $work/server.log" >&2
  return 1
}
