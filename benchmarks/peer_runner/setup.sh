#!/usr/bin/env bash
# Build one virtual environment per peer library for `benchmarks.peer_sweep`:
#
#   .venv-repeng            repeng (pins numpy<2; transformers>=4.36.2, no upper bound)
#   .venv-steering-vectors  steering-vectors (pins transformers<5)
#
# Each gets the newest torch / transformers / numpy that its library accepts, as pip resolves them.
# torch is the CPU build: from $TORCH_INDEX (PyTorch's CPU index) when that is reachable, else
# $TORCH_SPEC (default torch==2.13.0, the CPU wheel this project's Makefile installs, which pip finds
# in its configured find-links; a GPU user sets TORCH_SPEC=torch or a CUDA build, and FORCE=1).
# Idempotent: a venv whose imports already work is left alone (FORCE=1 rebuilds). The resolved
# versions are printed and written to <venv>/peer-versions.txt.
#
#   bash benchmarks/peer_runner/setup.sh [repeng] [steering-vectors]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
[ -n "${TORCH_SPEC:-}" ] && TORCH_SPEC_SET=1
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(repeng steering-vectors)

module_of() {  # the import name of a peer's package
  case "$1" in
    repeng) echo repeng ;;
    steering-vectors) echo steering_vectors ;;
    *) echo "unknown peer: $1 (repeng | steering-vectors)" >&2; return 1 ;;
  esac
}

record_versions() {  # $1 venv, $2 pip name of the peer
  "$1/bin/python" - "$2" >"$1/peer-versions.txt" <<'EOF'
import sys
from importlib.metadata import version
for name in (sys.argv[1], "torch", "transformers", "numpy", "tokenizers", "safetensors"):
    try:
        print(f"{name}=={version(name)}")
    except Exception:
        print(f"{name}: not installed")
print(f"python=={sys.version.split()[0]}")
EOF
  echo "== $(basename "$1"):"; sed 's/^/   /' "$1/peer-versions.txt"
}

pip_in() {  # $1 venv, then pip arguments; drops pip's notes about absent local index folders
  local venv="$1"; shift
  { "$venv/bin/python" -m pip "$@" 2>&1; } | { grep -v "^WARNING: Location 'file:" || true; }
}

install_torch() {  # $1 venv
  if [ -z "${TORCH_SPEC_SET:-}" ] && curl -sfI --max-time 5 "$TORCH_INDEX/" >/dev/null 2>&1; then
    pip_in "$1" install -q torch --index-url "$TORCH_INDEX"
  else
    echo "   installing $TORCH_SPEC (the CPU wheel from pip's find-links unless TORCH_SPEC says otherwise)"
    pip_in "$1" install -q "$TORCH_SPEC"
  fi
}

for peer in "${PEERS[@]}"; do
  mod="$(module_of "$peer")"
  venv="$ROOT/.venv-$peer"
  check="import $mod, torch, transformers, numpy, safetensors"
  if [ -z "${FORCE:-}" ] && [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "== $(basename "$venv") exists and imports work; skipping (FORCE=1 rebuilds)"
    record_versions "$venv" "$peer"
    continue
  fi
  echo "== building $(basename "$venv") with $("$PYTHON" --version)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  pip_in "$venv" install -q --upgrade pip
  install_torch "$venv"
  # No version pins of ours: pip picks the newest transformers / numpy the peer allows, keeping the
  # CPU torch above (it satisfies both peers' torch requirements).
  pip_in "$venv" install -q "$peer" transformers numpy safetensors
  "$venv/bin/python" -c "$check"
  record_versions "$venv" "$peer"
done
