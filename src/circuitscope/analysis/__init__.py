"""Analyses: one module per analysis, each a function returning a typed result, its plot beside it."""
