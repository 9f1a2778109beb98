# Shared by the scripts in bench/ (sourced, not run): loopback helpers.

# A TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (at most 20 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1
    for _ in $(seq 1 400); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench: nothing listens on port $port" >&2
    return 1
}

# Stop with a clear message unless every tool named is on PATH.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }
    done
}

# Build the release binary of this checkout; print its path.
build_dsync() {
    local repo_dir
    repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    echo "== building dsync (release)" >&2
    (cd "$repo_dir" && cargo build --release --quiet) >&2
    echo "$repo_dir/target/release/dsync"
}
