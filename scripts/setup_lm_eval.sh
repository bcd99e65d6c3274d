#!/usr/bin/env bash
# Build .venv-lm-eval: EleutherAI's lm-evaluation-harness in its own virtual environment, for the
# parity test (tests/test_lm_eval_parity.py) that runs the harness itself beside xsteer.
#
#   lm-eval[hf]   $LM_EVAL_SPEC (default lm-eval==0.4.13, which has the `steered` model)
#   torch         $TORCH_SPEC (default torch==2.13.0, the CPU wheel the project's Makefile
#                 installs; pip finds it in its configured find-links, else on PyPI)
#   transformers  $TRANSFORMERS_SPEC (default: the version in the project's .venv when there is
#                 one, so both sides run the same model code; else the newest xsteer accepts)
#
# Idempotent: a venv whose imports already work and whose versions match is left alone (FORCE=1
# rebuilds). The resolved versions are printed and written to .venv-lm-eval/lm-eval-versions.txt.
#
#   bash scripts/setup_lm_eval.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="${LM_EVAL_VENV:-$ROOT/.venv-lm-eval}"
LM_EVAL_SPEC="${LM_EVAL_SPEC:-lm-eval==0.4.13}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ -z "${TRANSFORMERS_SPEC:-}" ]; then
  main_tf="$("$ROOT/.venv/bin/python" -c 'from importlib.metadata import version; print(version("transformers"))' 2>/dev/null || true)"
  TRANSFORMERS_SPEC="${main_tf:+transformers==$main_tf}"
  TRANSFORMERS_SPEC="${TRANSFORMERS_SPEC:-transformers>=5.9,<5.20}"
fi

pip_in() {  # pip in the venv; drops pip's notes about absent local index folders
  { "$VENV/bin/python" -m pip "$@" 2>&1; } | { grep -v "^WARNING: Location 'file:" || true; }
}

wanted="$LM_EVAL_SPEC $TORCH_SPEC $TRANSFORMERS_SPEC"
check="import lm_eval, lm_eval.models.hf_steered, torch, transformers, accelerate"
if [ -z "${FORCE:-}" ] && [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$check" 2>/dev/null \
   && [ "$(cat "$VENV/.wanted" 2>/dev/null)" = "$wanted" ]; then
  echo "== $(basename "$VENV") exists and imports work; skipping (FORCE=1 rebuilds)"
  sed 's/^/   /' "$VENV/lm-eval-versions.txt"
  exit 0
fi

echo "== building $(basename "$VENV") with $("$PYTHON" --version): $wanted"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip_in install -q --upgrade pip
pip_in install -q "$TORCH_SPEC"
pip_in install -q "${LM_EVAL_SPEC/lm-eval/lm-eval[hf]}" "$TORCH_SPEC" "$TRANSFORMERS_SPEC"
"$VENV/bin/python" -c "$check"
"$VENV/bin/python" - >"$VENV/lm-eval-versions.txt" <<'EOF'
import sys
from importlib.metadata import version
for name in ("lm-eval", "torch", "transformers", "tokenizers", "accelerate", "datasets", "numpy"):
    try:
        print(f"{name}=={version(name)}")
    except Exception:
        print(f"{name}: not installed")
print(f"python=={sys.version.split()[0]}")
EOF
echo "$wanted" >"$VENV/.wanted"
echo "== $(basename "$VENV"):"; sed 's/^/   /' "$VENV/lm-eval-versions.txt"
