"""Fixtures of the transcoder tests: one torch thread, a tiny ReLU GPT-2 and transcoders that reproduce its MLPs."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import circuitscope as cs
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.transcoders import TranscoderConfig, TranscoderKind, TranscoderSet
from tests.tiny_models import VOCAB


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every transcoder test on one torch thread (tests/conftest.py's ``one_thread``)."""


def relu_gpt2() -> cs.HookedModel:
    """A tiny random GPT-2 whose MLPs use ReLU, so a ReLU transcoder can reproduce them exactly."""
    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=64, activation_function="relu")
    return cs.HookedModel(tf.GPT2LMHeadModel(config).eval())


def exact_transcoders(model: cs.HookedModel, kind: TranscoderKind = "per_layer") -> TranscoderSet:
    """ReLU transcoders equal to the model's MLPs: W_enc = W_in, b_enc = b_in, W_dec = W_out, b_dec = b_out.

    Cross-layer: the same weights on the diagonal, zero decoders from a layer to the later ones.
    """
    hf = model.hf_model
    assert isinstance(hf, tf.GPT2LMHeadModel)
    blocks = hf.transformer.h
    n, d, d_mlp = model.cfg.n_layers, model.cfg.d_model, model.cfg.d_mlp
    cfg = TranscoderConfig(
        kind, "relu", d, d_mlp, d, tuple(range(n)), model_name="relu-gpt2", model_fingerprint=model_fingerprint(model)
    )
    tc = TranscoderSet(cfg)
    with torch.no_grad():
        for i, block in enumerate(blocks):
            assert isinstance(block, tf.models.gpt2.modeling_gpt2.GPT2Block)
            tc.W_enc[i].copy_(block.mlp.c_fc.weight)
            tc.b_enc[i].copy_(block.mlp.c_fc.bias)
            tc.W_dec[i][0].copy_(block.mlp.c_proj.weight)
            tc.b_dec[i].copy_(block.mlp.c_proj.bias)
    return tc


@pytest.fixture(scope="module")
def relu_model() -> cs.HookedModel:
    return relu_gpt2()
