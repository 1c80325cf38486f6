"""The architecture registry: one class per name, and the facts each architecture declares."""

from __future__ import annotations

import pytest

from circuitscope import sae as S  # noqa: N812
from circuitscope.sae.base import register_architecture


def test_a_name_registers_once() -> None:
    before = dict(S.ARCHITECTURES)
    with pytest.raises(S.SAEConfigError, match="'topk' is already registered"):

        @register_architecture("topk")
        class AnotherTopK(S.TopKSAE):
            pass

    assert before == S.ARCHITECTURES
    assert S.ARCHITECTURES["topk"] is S.TopKSAE


def test_architectures_declare_what_training_and_files_need() -> None:
    arch = S.ARCHITECTURES
    assert [n for n in sorted(arch) if arch[n].uses_k] == ["batchtopk", "topk"]
    assert {n: arch[n].default_sparsity_coefficient for n in arch} == {
        "relu": 5.0,
        "jumprelu": 1e-3,
        "topk": 0.0,
        "batchtopk": 0.0,
    }
    assert [n for n in arch if arch[n].decoder_norm_l1] == ["relu"]
    assert {n: arch[n].saelens_architecture for n in arch} == {
        "relu": "standard",
        "topk": "topk",
        "jumprelu": "jumprelu",
        "batchtopk": "jumprelu",
    }


def test_training_defaults_follow_the_architecture() -> None:
    assert S.TrainConfig(architecture="relu").sparsity == 5.0
    assert S.TrainConfig(architecture="jumprelu").sparsity == 1e-3
    assert S.TrainConfig(architecture="topk").sparsity == 0.0
    assert not S.TrainConfig(architecture="relu").unit_decoder
    assert S.TrainConfig(architecture="relu", l1_weighting="plain").unit_decoder
    assert S.TrainConfig(architecture="topk").unit_decoder
