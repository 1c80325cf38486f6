"""The views behind ``circuitscope serve``: one function per endpoint, a model and a request in, a typed result
with ``to_json()`` out. Each checks its inputs against the model before any work (a
:class:`~circuitscope.serve.errors.ServeInputError` saying what is wrong and how to fix it) and leaves no hook
attached, also when it raises. The caller holds the model's lock for the whole call."""

from circuitscope.serve.views.attention import AttentionView, HeadScoresView, attention_view, head_scores
from circuitscope.serve.views.features import (
    FeaturePageView,
    FeatureSource,
    TokenFeaturesView,
    feature_page_view,
    feature_sources,
    token_features_view,
)
from circuitscope.serve.views.graphs import circuit_file_view, graph_file_view, graph_job
from circuitscope.serve.views.intervene import InterventionSpec, InterventionView, intervene_view
from circuitscope.serve.views.prompt import LensRows, Prediction, PromptView, prompt_view
from circuitscope.serve.views.steering import GenerationStep, actadd_view, feature_vector, generation_steps

__all__ = [
    "AttentionView",
    "FeaturePageView",
    "FeatureSource",
    "GenerationStep",
    "HeadScoresView",
    "InterventionSpec",
    "InterventionView",
    "LensRows",
    "Prediction",
    "PromptView",
    "TokenFeaturesView",
    "actadd_view",
    "attention_view",
    "circuit_file_view",
    "feature_page_view",
    "feature_sources",
    "feature_vector",
    "generation_steps",
    "graph_file_view",
    "graph_job",
    "head_scores",
    "intervene_view",
    "prompt_view",
    "token_features_view",
]
