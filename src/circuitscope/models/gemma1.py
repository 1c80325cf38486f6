"""Gemma 1: Llama's block layout with scaled embeddings and (1 + w) RMSNorm."""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(family="gemma", model_types=("gemma",), embed_scale_buffer="embed_scale")
