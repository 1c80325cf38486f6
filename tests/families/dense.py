"""Tiny recipes of the dense decoders of issue 14 (OPT, GPT-Neo, GPT-J, Phi, OLMo, ...)."""

from __future__ import annotations

from tests.families.recipe import Tiny

RECIPES: list[Tiny] = []
