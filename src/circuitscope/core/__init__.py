"""The core: hooked models, hook points, activation caches, loading and tokens."""
