"""Tiny model recipes, one file per family group (see recipe.py)."""
