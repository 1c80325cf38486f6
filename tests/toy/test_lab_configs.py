"""Every lab's configuration refuses a run that cannot train (lr <= 0, no steps, empty batches) before any work."""

from __future__ import annotations

from typing import Any

import pytest

from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.grokking_lab import GrokkingConfig
from circuitscope.toy.induction import InductionConfig
from circuitscope.toy.superposition import TrainingOptions


@pytest.mark.parametrize(
    ("config", "fields", "message"),
    [
        (TrainingOptions, {"lr": 0.0}, r"lr \(0.0\) positive"),
        (TrainingOptions, {"lr": -1e-3}, r"lr \(-0.001\) positive"),
        (TrainingOptions, {"steps": 0}, r"steps \(0\)"),
        (TrainingOptions, {"batch_size": 0}, r"batch_size \(0\)"),
        (GrokkingConfig, {"lr": 0.0}, "lr must be positive"),
        (GrokkingConfig, {"lr": -1.0}, "lr must be positive"),
        (GrokkingConfig, {"steps": 0}, "steps must be at least 1"),
        (InductionConfig, {"lr": 0.0}, "lr must be positive"),
        (InductionConfig, {"steps": 0}, "steps must be at least 1"),
        (InductionConfig, {"batch_size": 0}, "batch_size must be at least 1"),
        (InductionConfig, {"n_heads": 0}, r"n_heads \(0\)"),
    ],
)
def test_a_config_that_cannot_train_is_refused(config: type, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        config(**fields)
    config()  # the defaults train
