"""Steering vectors to and from other tools' formats.

- ``xsteer.interop.lm_eval``: lm-evaluation-harness's ``steered`` model (a ``.pt`` of hookpoint →
  vector, coefficient, action), so scores under steering can be produced by the harness itself.

``SteeringVectors.to_gguf`` (llama.cpp control vectors) lives on the vectors class.
"""

from xsteer.interop.lm_eval import from_lm_eval, lm_eval_config, to_lm_eval

__all__ = ["from_lm_eval", "lm_eval_config", "to_lm_eval"]
