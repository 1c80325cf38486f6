"""Write a tiny transformers Llama model to a GGUF file, the way llama.cpp's converter does.

Used by the loading tests to build a ``.gguf`` without network access. Weights are stored as
F32, so a round trip through transformers' GGUF loader is exact. llama.cpp stores ``attn_q`` and
``attn_k`` with the rotary halves interleaved per head (its ``permute``); transformers undoes that
on load (``LlamaTensorProcessor._reverse_permute_weights``), so the writer applies the forward
permutation here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["llama_cpp_permute", "tiny_llama_vocab", "write_llama_gguf"]

# A small sentencepiece-style ("llama" tokenizer model) vocabulary: special tokens, the word-start
# marker and single letters, then whole pieces. Merges are rebuilt from it by transformers.
_SPECIALS = ["<unk>", "<s>", "</s>"]
_PIECES = [
    "he", "hel", "hell", "hello", "\u2581hello",
    "wo", "wor", "worl", "world", "\u2581world",
    "\u2581c", "at", "\u2581cat",
]  # fmt: skip
_LETTERS = ["\u2581", *"abcdefghijklmnopqrstuvwxyz"]


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


def _np(t: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().float().numpy().astype(np.float32))


def write_llama_gguf(
    model: Any, path: Path, *, tokenizer: bool = True, permute_qk: bool = True, name: str = "tiny-llama"
) -> Path:
    """Write ``model`` (a transformers ``LlamaForCausalLM``) to ``path`` as an F32 GGUF file.

    With ``tokenizer=True`` the file also carries a minimal "llama" (sentencepiece-style)
    tokenizer section of exactly ``config.vocab_size`` tokens. ``permute_qk=False`` writes
    ``attn_q``/``attn_k`` in Hugging Face's layout instead of llama.cpp's: a deliberately wrong
    file, for checking that a test can tell the difference.
    """
    import gguf

    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    rope_theta = float((getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0))

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_theta)
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    if tokenizer:
        tokens, scores, types = tiny_llama_vocab(cfg.vocab_size)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(tokens.index("<s>"))
        writer.add_eos_token_id(tokens.index("</s>"))
        writer.add_unk_token_id(tokens.index("<unk>"))
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)

    sd = model.state_dict()
    writer.add_tensor("token_embd.weight", _np(sd["model.embed_tokens.weight"]))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", _np(sd[p + "input_layernorm.weight"]))
        q, k = _np(sd[p + "self_attn.q_proj.weight"]), _np(sd[p + "self_attn.k_proj.weight"])
        if permute_qk:
            q, k = llama_cpp_permute(q, n_head), llama_cpp_permute(k, n_kv)
        writer.add_tensor(f"blk.{i}.attn_q.weight", q)
        writer.add_tensor(f"blk.{i}.attn_k.weight", k)
        writer.add_tensor(f"blk.{i}.attn_v.weight", _np(sd[p + "self_attn.v_proj.weight"]))
        writer.add_tensor(f"blk.{i}.attn_output.weight", _np(sd[p + "self_attn.o_proj.weight"]))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", _np(sd[p + "post_attention_layernorm.weight"]))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", _np(sd[p + "mlp.gate_proj.weight"]))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", _np(sd[p + "mlp.up_proj.weight"]))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", _np(sd[p + "mlp.down_proj.weight"]))
    writer.add_tensor("output_norm.weight", _np(sd["model.norm.weight"]))
    if not cfg.tie_word_embeddings:
        writer.add_tensor("output.weight", _np(sd["lm_head.weight"]))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
