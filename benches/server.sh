# Sourced by the benchmark scripts: start a release `voxgate serve` with the
# default offline agent on free loopback ports, logging to $work/server.log,
# stopped when the script exits. Set $work first; extra VOXGATE_* settings
# may be exported before. Sets $http (its HTTP port) and $server (its pid).

free_port() {
  python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_$1); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

start_server() {
  http=$(free_port STREAM)
  VOXGATE_HTTP__LISTEN=127.0.0.1:$http VOXGATE_STORAGE__RECORDINGS_DIR="$work/recordings" \
  VOXGATE_LOG__FILTER=${VOXGATE_LOG__FILTER:-warn} \
    target/release/voxgate serve --config config.toml 2> "$work/server.log" &
  server=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$http/healthz" > /dev/null && return 0
    sleep 0.5
  done
  echo "the server did not start; see $work/server.log" >&2
  return 1
}
