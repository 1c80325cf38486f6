"""Write a tiny transformers model to a GGUF file, the way llama.cpp's converter lays it out.

Used by the loading tests to build ``.gguf`` files without network access. Weights are stored as
F32, so a round trip through transformers' GGUF loader is exact.

:func:`write_gguf` covers every architecture transformers' GGUF loader reads:

- **tensor names** come from the ``gguf`` package's own map (``gguf.get_tensor_name_map``), the
  one transformers inverts on load, so each Hugging Face parameter gets llama.cpp's name;
- **metadata** is written under the keys transformers reads for the architecture
  (``GGUF_CONFIG_MAPPING``), with the values of the model's config;
- **weight transforms**: llama.cpp stores some tensors in its own layout and transformers' tensor
  processors (``modeling_gguf_pytorch_utils``) undo that on load; the writer applies the forward
  transform: Llama's q/k rotary permutation (:func:`llama_cpp_permute`), GPT-2's transposed Conv1D
  weights, Gemma's ``1 + w`` norms, Mamba's ``A = -exp(A_log)`` and squeezed convolution, the
  split gate/up expert tensors of Qwen2/3-MoE, gpt-oss's de-interleaved, transposed experts, StableLM's
  per-head q/k norms stacked into one tensor, and Falcon's ``[q..., k..., v...]`` fused projection.

Whether transformers then reads such a file back exactly is what tests/core/test_gguf_families.py checks
(and ``GGUF_LIMITS`` in circuitscope.models.gguf_limits records where it does not).

:func:`write_llama_gguf` is the Llama case with its knobs for the loading tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GGUFWriteError",
    "gguf_architecture",
    "llama_cpp_permute",
    "tiny_llama_vocab",
    "write_gguf",
    "write_llama_gguf",
]

# HF model_type -> llama.cpp's architecture name, where they differ (transformers maps them back on load).
_ARCH_NAMES = {
    "qwen2_moe": "qwen2moe",
    "qwen3_moe": "qwen3moe",
    "gpt_oss": "gpt-oss",
    "gemma3_text": "gemma3",
    "mistral": "llama",  # llama.cpp writes Mistral as "llama"; transformers tells them apart by general.name
    "cohere": "command-r",
}
# HF model_type -> the key of transformers' GGUF_CONFIG_MAPPING holding its metadata keys
_CONFIG_KEYS = {"gemma3_text": "gemma3"}

# A small sentencepiece-style ("llama" tokenizer model) vocabulary: special tokens, the word-start
# marker and single letters, then whole pieces. Merges are rebuilt from it by transformers.
_SPECIALS = ["<unk>", "<s>", "</s>"]
_PIECES = [
    "he", "hel", "hell", "hello", "\u2581hello",
    "wo", "wor", "worl", "world", "\u2581world",
    "\u2581c", "at", "\u2581cat",
]  # fmt: skip
_LETTERS = ["\u2581", *"abcdefghijklmnopqrstuvwxyz"]


class GGUFWriteError(ValueError):
    """A model this writer cannot lay out as llama.cpp would (a tensor with no GGUF name, say)."""


def tiny_llama_vocab(size: int) -> tuple[list[str], list[float], list[int]]:
    """``(tokens, scores, token_types)`` of a ``size``-token sentencepiece-style vocabulary.

    Token types follow llama.cpp: 1 normal, 2 unknown, 3 control, 5 unused (padding pieces).
    Scores are higher for longer pieces, so merges build whole words when they can.
    """
    base = _SPECIALS + _LETTERS + _PIECES
    if size < len(base):
        raise ValueError(f"the tiny vocabulary needs at least {len(base)} tokens, got {size}")
    tokens = base + [f"<unused{i}>" for i in range(size - len(base))]
    scores: list[float] = []
    types: list[int] = []
    for index, token in enumerate(tokens):
        if token == "<unk>":
            types.append(2)
        elif token in _SPECIALS:
            types.append(3)
        elif token.startswith("<unused"):
            types.append(5)
        else:
            types.append(1)
        scores.append(0.0 if types[-1] != 1 else float(len(token)) - index / 1000.0)
    return tokens, scores, types


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``permute`` (convert_hf_to_gguf.py): the inverse of transformers' reverse permute."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_architecture(model_type: str) -> str:
    """llama.cpp's architecture name for a Hugging Face ``model_type`` (``qwen2_moe`` -> ``qwen2moe``)."""
    return _ARCH_NAMES.get(model_type, model_type)


def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().float().numpy().astype(np.float32))


def _config_value(cfg: Any, attr: str) -> Any:
    """``cfg.attr``, or the rotary parameter of that name (transformers 5 keeps ``rope_theta`` there)."""
    value = getattr(cfg, attr, None)
    if value is None:
        value = (getattr(cfg, "rope_parameters", None) or {}).get(attr)
    if value is None and attr == "head_dim":
        value = cfg.hidden_size // cfg.num_attention_heads
    return value


def _add_metadata(writer: Any, cfg: Any, arch: str) -> None:
    """Every metadata key transformers reads for this architecture that the config has a value for."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    model_type: str = cfg.model_type
    keys = GGUF_CONFIG_MAPPING.get(_CONFIG_KEYS.get(model_type, model_type))
    if keys is None:
        raise GGUFWriteError(f"transformers' GGUF loader reads no {cfg.model_type!r} files")
    for gguf_key, attr in keys.items():
        value = None if attr is None else _config_value(cfg, attr)
        key = f"{arch}.{gguf_key}"
        if value is None or isinstance(value, list | dict):
            continue
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)


def _add_tokenizer(writer: Any, size: int, pad: int | None) -> None:
    tokens, scores, types = tiny_llama_vocab(size)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokens.index("<s>"))
    writer.add_eos_token_id(tokens.index("</s>"))
    writer.add_unk_token_id(tokens.index("<unk>"))
    if pad is not None and 0 <= pad < size:  # transformers reads the config's pad_token_id from here
        writer.add_pad_token_id(pad)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def _falcon_qkv(weights: np.ndarray, cfg: Any) -> np.ndarray:
    """llama.cpp's Falcon layout: each kv group's [q..., k, v] regrouped as [q..., k..., v...]."""
    n_head = cfg.num_attention_heads
    n_kv = cfg.num_kv_heads if cfg.new_decoder_architecture else (1 if cfg.multi_query else n_head)
    d_head = cfg.hidden_size // n_head
    grouped = weights.reshape(n_kv, n_head // n_kv + 2, d_head, *weights.shape[1:])
    q = grouped[:, :-2].reshape(n_head * d_head, *weights.shape[1:])
    k = grouped[:, -2].reshape(n_kv * d_head, *weights.shape[1:])
    v = grouped[:, -1].reshape(n_kv * d_head, *weights.shape[1:])
    return np.concatenate([q, k, v], axis=0)


_GPT2_CONV1D = ("attn_qkv.weight", "ffn_down.weight", "ffn_up.weight", "attn_output.weight")


def _llama_cpp_layout(arch: str, gguf_name: str, w: np.ndarray, cfg: Any, permute_qk: bool) -> np.ndarray:
    """One tensor in llama.cpp's layout: the forward of what transformers' tensor processor undoes."""
    if arch == "llama" and not permute_qk:
        return w
    if arch == "llama" and ".attn_q." in gguf_name:
        return llama_cpp_permute(w, cfg.num_attention_heads)
    if arch == "llama" and ".attn_k." in gguf_name:
        return llama_cpp_permute(w, cfg.num_key_value_heads)
    if arch == "gpt2" and gguf_name.endswith(
        ("attn_qkv.weight", "ffn_down.weight", "ffn_up.weight", "attn_output.weight")
    ):
        return np.ascontiguousarray(w.T)  # Conv1D keeps [in, out]; llama.cpp stores [out, in]
    if arch in ("gemma2", "gemma3") and "norm.weight" in gguf_name:
        return w + 1  # Gemma's RMSNorm scales by 1 + w; llama.cpp stores 1 + w
    if arch == "mamba" and "ssm_conv1d.weight" in gguf_name:
        return np.ascontiguousarray(w.squeeze(1))
    if arch == "mamba" and "ssm_a" in gguf_name:
        return -np.exp(w)  # llama.cpp stores A = -exp(A_log)
    if arch == "falcon" and "attn_qkv" in gguf_name:
        return _falcon_qkv(w, cfg)
    if "ffn_gate_inp_shexp" in gguf_name:
        return np.ascontiguousarray(w.reshape(-1))  # transformers adds the leading 1 back
    return w


def _moe_gate_up(hf_name: str, w: np.ndarray, name_map: Any) -> list[tuple[str, np.ndarray]] | None:
    """Qwen2/3-MoE's fused ``experts.gate_up_proj`` [expert, 2 * d_ff, d_model]: llama.cpp's two tensors."""
    if not hf_name.endswith("mlp.experts.gate_up_proj"):
        return None
    down = name_map.get_name(hf_name.replace("gate_up_proj", "down_proj"))
    if down is None or not down.endswith("ffn_down_exps"):
        return None
    half = w.shape[1] // 2
    stem = down[: -len("ffn_down_exps")]
    return [(f"{stem}ffn_gate_exps.weight", w[:, :half]), (f"{stem}ffn_up_exps.weight", w[:, half:])]


def _gpt_oss_experts(hf_name: str, w: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
    """gpt-oss's fused experts as llama.cpp's converter writes them: gate and up de-interleaved (even and odd
    columns of ``gate_up_proj``), every matrix transposed to [expert, out, in]."""
    parts = hf_name.split(".")
    if "experts" not in parts or not parts[-1].startswith(("gate_up_proj", "down_proj")):
        return None
    stem, bias = f"blk.{parts[2]}.", parts[-1].endswith("_bias")
    suffix = "bias" if bias else "weight"
    flip = (lambda a: a) if bias else (lambda a: np.ascontiguousarray(a.swapaxes(-1, -2)))
    if parts[-1].startswith("down_proj"):
        return [(f"{stem}ffn_down_exps.{suffix}", flip(w))]
    gate, up = w[..., ::2], w[..., 1::2]
    return [(f"{stem}ffn_gate_exps.{suffix}", flip(gate)), (f"{stem}ffn_up_exps.{suffix}", flip(up))]


def _stacked_head_norms(state: dict[str, Any]) -> dict[str, Any]:
    """The state dict with per-head norms (StableLM's ``q_layernorm.norms.N.weight``) stacked into one
    ``[head, d_head]`` tensor per module, as llama.cpp's converter writes them."""
    import torch

    out: dict[str, Any] = {}
    stacks: dict[str, list[Any]] = {}
    for name, tensor in state.items():
        match = re.fullmatch(r"(.*)\.norms\.\d+\.weight", name)
        if match:
            stacks.setdefault(f"{match[1]}.weight", []).append(tensor)
            out.setdefault(f"{match[1]}.weight", None)
        else:
            out[name] = tensor
    for name, parts in stacks.items():
        out[name] = torch.stack(parts)
    return out


def _tensors(model: Any, arch: str, permute_qk: bool) -> list[tuple[str, np.ndarray]]:
    """``(gguf name, array)`` of every parameter of ``model``, in llama.cpp's names and layouts."""
    import gguf

    cfg = model.config
    try:
        arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    except StopIteration:
        raise GGUFWriteError(f"the gguf package knows no architecture {arch!r}") from None
    name_map = gguf.get_tensor_name_map(arch_id, cfg.num_hidden_layers)
    out: list[tuple[str, np.ndarray]] = []
    seen: set[int] = set()
    for hf_name, tensor in _stacked_head_norms(model.state_dict()).items():
        if tensor.data_ptr() in seen:
            continue  # a tied weight (the unembedding of tied embeddings): llama.cpp writes it once
        seen.add(tensor.data_ptr())
        w = _np(tensor)
        stem, _, suffix = hf_name.rpartition(".")
        if suffix not in ("weight", "bias"):
            stem, suffix = hf_name, ""
        experts = _gpt_oss_experts(hf_name, w) if arch == "gpt-oss" else None
        if experts is not None:
            out.extend(experts)
            continue
        gguf_stem = name_map.get_name(stem)
        if gguf_stem is None:
            split = _moe_gate_up(hf_name, w, name_map)
            if split is None:
                raise GGUFWriteError(f"no GGUF name for {hf_name!r} under architecture {arch!r}")
            out.extend(split)
            continue
        gguf_name = f"{gguf_stem}.{suffix}" if suffix else gguf_stem
        if gguf_name.endswith("attn_sinks"):
            gguf_name += ".weight"  # llama.cpp names gpt-oss's sinks like a weight
        out.append((gguf_name, _llama_cpp_layout(arch, gguf_name, w, cfg, permute_qk)))
    return out


def write_gguf(
    model: Any,
    path: Path,
    *,
    tokenizer: bool = True,
    name: str | None = None,
    permute_qk: bool = True,
    omit: tuple[str, ...] = (),
) -> Path:
    """Write ``model`` (a transformers model of a GGUF-readable family) to ``path`` as an F32 GGUF file.

    With ``tokenizer=True`` the file carries a minimal "llama" (sentencepiece-style) tokenizer of
    exactly ``config.vocab_size`` tokens (transformers reads some families' vocabulary size from it).
    ``name`` is ``general.name`` (default ``tiny-<model_type>``). Raises :class:`GGUFWriteError` for
    a model whose tensors or metadata have no GGUF form. ``permute_qk=False`` (Llama only) writes
    ``attn_q``/``attn_k`` in Hugging Face's layout instead of llama.cpp's: a deliberately wrong file,
    for checking that a test can tell the difference; ``omit`` (GGUF tensor names) leaves tensors out, the
    same way, for a file transformers cannot fill the model from.
    """
    import gguf

    cfg = model.config
    arch = gguf_architecture(cfg.model_type)
    tensors = _tensors(model, arch, permute_qk)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name or f"tiny-{cfg.model_type}")
    _add_metadata(writer, cfg, arch)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    if tokenizer:
        _add_tokenizer(writer, cfg.vocab_size, getattr(cfg, "pad_token_id", None))
    for gguf_name, array in tensors:
        if gguf_name in omit:
            continue
        writer.add_tensor(gguf_name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_llama_gguf(
    model: Any, path: Path, *, tokenizer: bool = True, permute_qk: bool = True, name: str = "tiny-llama"
) -> Path:
    """Write ``model`` (a transformers ``LlamaForCausalLM``) to ``path`` as F32 GGUF (see :func:`write_gguf`)."""
    return write_gguf(model, path, tokenizer=tokenizer, name=name, permute_qk=permute_qk)
