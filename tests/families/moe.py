"""Tiny recipes of the mixture-of-experts families (Mixtral, Qwen2/3-MoE, OLMoE, gpt-oss)."""

from __future__ import annotations

from tests.families.recipe import Tiny

RECIPES: list[Tiny] = []
