"""The induction lab end to end on a tiny model (a smoke run: the curves, the comparisons, the report)."""

from __future__ import annotations

import pytest

from circuitscope.report.induction import induction_report
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.induction import InductionConfig, induction_json, repeated_segment_batch, run_induction
from tests.browser import open_in_chromium


def test_tiny_induction_lab_and_report(tmp_path) -> None:
    import torch

    batch = repeated_segment_batch(torch.Generator().manual_seed(0), 4, 16, 10)
    assert batch.shape == (4, 16)
    base = InductionConfig(d_model=16, n_heads=2, n_ctx=16, d_vocab=10, steps=2, checkpoint_every=1, batch_size=4)
    runs = run_induction((1, 2), base, tmp_path / "ck")
    one, two = runs
    assert one.steps == [0, 1, 2] and len(two.induction) == 3
    assert one.k_composition == [None, None, None] and all(v is not None for v in two.k_composition)
    assert two.ablation is not None and two.ablation.loss_increase.shape == (2, 2)
    payload = induction_json(runs)
    assert set(payload["models"]) == {"1_layer", "2_layer"}
    page = induction_report(runs).write(tmp_path / "report.html")
    assert open_in_chromium(page).console_errors == []


def test_bad_config() -> None:
    with pytest.raises(LabConfigError, match="n_layers"):
        InductionConfig(n_layers=0)
    with pytest.raises(LabConfigError, match="data"):
        InductionConfig(data="wiki")  # type: ignore[arg-type]  # the bad input under test
