#!/usr/bin/env bash
# Build llama.cpp's CLI tools (CPU only, Release) from the llama.cpp vendored in the
# `llama-cpp-python` source distribution on PyPI, for the opt-in interop check
# (scripts/llamacpp_check.py, `make interop`). Needs cmake >= 3.14 and a C++17 compiler; no
# network beyond PyPI, no GPU.
#
#   bash scripts/build_llamacpp.sh   # -> .llamacpp/bin/{llama-debug,llama-completion,llama-quantize}
#
# Only three targets are built: llama-debug (`--save-logits` writes the next-token logits of a
# prompt) and llama-completion (greedy continuations), which both take llama.cpp's own
# `--control-vector-scaled FILE:SCALE`, so the control-vector file goes through llama.cpp's loader,
# not ours; and llama-quantize (an F32 copy of a quantized GGUF, for `llamacpp_check.py --f32`).
# Idempotent: built tools are kept, a missing one is built incrementally (FORCE=1 starts over). The build time goes to
# .llamacpp/build-info.json. Environment: LLAMACPP_PY_VERSION (default: newest sdist),
# JOBS (default 2), PYTHON (default .venv/bin/python, else python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.llamacpp"
JOBS="${JOBS:-2}"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || command -v python3)}"
TARGETS=(llama-debug llama-completion llama-quantize)

missing=0
for t in "${TARGETS[@]}"; do [ -x "$DEST/bin/$t" ] || missing=1; done
if [ -z "${FORCE:-}" ] && [ $missing = 0 ]; then
  echo "== llama.cpp tools already built in $DEST/bin (FORCE=1 rebuilds)"
  exit 0
fi
[ -n "${FORCE:-}" ] && rm -rf "$DEST/build" "$DEST/bin" "$DEST"/src/llama_cpp_python-*/
command -v cmake >/dev/null || { echo "cmake not found: apt-get install cmake (or pip install cmake)" >&2; exit 1; }

mkdir -p "$DEST/src"
start=$(date +%s)
spec="llama-cpp-python${LLAMACPP_PY_VERSION:+==$LLAMACPP_PY_VERSION}"
if ! ls "$DEST"/src/llama_cpp_python-*.tar.gz >/dev/null 2>&1 || [ -n "${FORCE:-}" ]; then
  rm -f "$DEST"/src/llama_cpp_python-*.tar.gz
  echo "== downloading the $spec sdist from PyPI"
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: "$spec" -d "$DEST/src"
fi
sdist="$(ls "$DEST"/src/llama_cpp_python-*.tar.gz | head -1)"
version="$(basename "$sdist" .tar.gz | sed 's/^llama_cpp_python-//')"
src="$DEST/src/llama_cpp_python-$version/vendor/llama.cpp"
[ -f "$src/CMakeLists.txt" ] || tar -xzf "$sdist" -C "$DEST/src" "llama_cpp_python-$version/vendor/llama.cpp"
download_s=$(( $(date +%s) - start ))

incremental=false; [ -f "$DEST/build/CMakeCache.txt" ] && incremental=true
echo "== configuring llama.cpp (vendored by llama-cpp-python $version)"
t0=$(date +%s)
nice -n 10 cmake -S "$src" -B "$DEST/build" -G "Unix Makefiles" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON >"$DEST/cmake-configure.log" 2>&1 \
  || { tail -30 "$DEST/cmake-configure.log" >&2; exit 1; }
echo "== building ${TARGETS[*]} with -j$JOBS (nice 10); log: $DEST/cmake-build.log"
nice -n 10 cmake --build "$DEST/build" --config Release -j "$JOBS" --target "${TARGETS[@]}" \
  >"$DEST/cmake-build.log" 2>&1 || { tail -30 "$DEST/cmake-build.log" >&2; exit 1; }
build_s=$(( $(date +%s) - t0 ))

mkdir -p "$DEST/bin"
for t in "${TARGETS[@]}"; do cp "$DEST/build/bin/$t" "$DEST/bin/$t"; done
cat >"$DEST/build-info.json" <<EOF
{"llama_cpp_python": "$version", "targets": "${TARGETS[*]}",
 "jobs": $JOBS, "nproc": $(nproc), "download_unpack_s": $download_s, "configure_build_s": $build_s, "incremental": $incremental,
 "cmake": "$(cmake --version | head -1 | awk '{print $3}')", "compiler": "$(${CXX:-c++} --version | head -1)"}
EOF
echo "== done in $(( $(date +%s) - start ))s: ${TARGETS[*]} in $DEST/bin"
cat "$DEST/build-info.json"
