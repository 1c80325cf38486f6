"""Tiny recipes of the state-space and hybrid families (Mamba, Mamba 2, Bamba)."""

from __future__ import annotations

from typing import Any

import transformers as tf

from tests.families.recipe import LLAMA, VOCAB, Tiny, seeded

_BAMBA: dict[str, Any] = dict(mamba_n_heads=8, mamba_d_state=8, mamba_expand=2, mamba_chunk_size=8)
_MAMBA2 = dict(state_size=8, expand=2, num_heads=8, head_dim=8, n_groups=1, chunk_size=8, conv_kernel=4)

RECIPES: list[Tiny] = [
    Tiny(
        "mamba",
        seeded(
            lambda: tf.MambaForCausalLM(
                tf.MambaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, state_size=4, expand=2)
            )
        ),
        attention=False,
    ),
    Tiny(
        "mamba2",
        seeded(
            lambda: tf.Mamba2ForCausalLM(
                tf.Mamba2Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, **_MAMBA2)  # type: ignore[arg-type]
            )
        ),
        attention=False,
    ),
    Tiny(  # a mixer layer, then an attention layer, each with its MLP; chunk 8 < SEQ 12 crosses a chunk
        "bamba",
        seeded(
            lambda: tf.BambaForCausalLM(
                tf.BambaConfig(**LLAMA, num_attention_heads=4, num_key_value_heads=2, attn_layer_indices=[1], **_BAMBA)
            )
        ),
    ),
]
