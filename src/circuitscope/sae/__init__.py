"""Sparse autoencoders: activation store, architectures, training, evaluation, dashboard data, SAELens files.

Typical use::

    import circuitscope as cs
    from circuitscope import sae

    model = cs.load_model("gemma-3-270m")
    store = sae.collect_activations(model, sae.default_corpus(), "acts/",
                                    sae.CollectConfig(hook="blocks.6.hook_resid_post", tokens=500_000))
    result = sae.train_sae(store, sae.TrainConfig(architecture="topk", k=32, expansion=16), out="sae/")
    print(sae.evaluate_sae(model, result.sae, eval_tokens).to_dict())
    logits = sae.run_with_sae(model, tokens, result.sae)
    with model.apply(sae.SAESplice(result.sae)):   # or model(tokens, interventions=[...])
        logits = model(tokens)
"""

from circuitscope.sae import batchtopk, jumprelu, relu, topk  # noqa: F401  (register the architectures)
from circuitscope.sae.base import ARCHITECTURES, SAE, SAEConfig, architecture_names, create_sae
from circuitscope.sae.batchtopk import BatchTopKSAE
from circuitscope.sae.collect import CollectConfig, collect_activations
from circuitscope.sae.corpus import Contexts, Corpus, build_contexts, default_corpus, load_corpus
from circuitscope.sae.dashboard import FeatureDashboardData, feature_dashboard_data
from circuitscope.sae.errors import (
    ActivationStoreError,
    SAEConfigError,
    SAEFormatError,
    SAEShapeError,
    UnknownArchitectureError,
)
from circuitscope.sae.evaluate import SAEEvalResult, ce_loss_recovered, evaluate_sae
from circuitscope.sae.frequency import LatentFrequencies, count_firings, store_frequencies
from circuitscope.sae.io import load_sae, save_sae
from circuitscope.sae.jumprelu import JumpReLUSAE
from circuitscope.sae.relu import ReLUSAE
from circuitscope.sae.splice import SAESplice, run_with_cache_and_saes, run_with_sae
from circuitscope.sae.store import ActivationStore, write_store
from circuitscope.sae.topk import TopKSAE
from circuitscope.sae.trainer import TrainConfig, TrainResult, geometric_median, train_sae

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "ActivationStore",
    "ActivationStoreError",
    "BatchTopKSAE",
    "CollectConfig",
    "Contexts",
    "Corpus",
    "FeatureDashboardData",
    "JumpReLUSAE",
    "LatentFrequencies",
    "ReLUSAE",
    "SAEConfig",
    "SAEConfigError",
    "SAEEvalResult",
    "SAEFormatError",
    "SAEShapeError",
    "SAESplice",
    "TopKSAE",
    "TrainConfig",
    "TrainResult",
    "UnknownArchitectureError",
    "architecture_names",
    "build_contexts",
    "ce_loss_recovered",
    "collect_activations",
    "count_firings",
    "create_sae",
    "default_corpus",
    "evaluate_sae",
    "feature_dashboard_data",
    "geometric_median",
    "load_corpus",
    "load_sae",
    "run_with_cache_and_saes",
    "run_with_sae",
    "save_sae",
    "store_frequencies",
    "train_sae",
    "write_store",
]
