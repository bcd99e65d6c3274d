"""Steering vectors to and from other tools' formats.

- ``xsteer.interop.lm_eval``: lm-evaluation-harness's ``steered`` model (a ``.pt`` of hookpoint →
  vector, coefficient, action), so scores under steering can be produced by the harness itself.

- ``xsteer.interop.llamacpp``: llama.cpp / repeng control-vector GGUF files, λ folded in, read back
  with one-line errors for another width, depth or a model GGUF.
- ``xsteer.interop.peers``: repeng's ``ControlVector`` (its GGUF) and steering-vectors'
  ``SteeringVector`` (a ``.pt`` of its fields).

Every importer returns ``(vectors, strengths)``; ``steer(model, vectors, 1.0,
schedule=PerLayer(strengths))`` steers as the other tool does.
"""

from xsteer.interop.llamacpp import from_llamacpp, read_control_vector, to_llamacpp, write_control_vector
from xsteer.interop.lm_eval import from_lm_eval, lm_eval_config, to_lm_eval
from xsteer.interop.peers import from_repeng, from_steering_vectors, to_repeng, to_steering_vectors

__all__ = [
    "from_llamacpp", "from_lm_eval", "from_repeng", "from_steering_vectors", "lm_eval_config",
    "read_control_vector", "to_llamacpp", "to_lm_eval", "to_repeng", "to_steering_vectors", "write_control_vector",
]
