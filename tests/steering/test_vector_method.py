"""How a vector was built is one of the named methods, in memory and in its file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
import torch

from circuitscope.errors import LoadError
from circuitscope.steering import SteeringVector, VectorMethod, load_vector, save_vector


def test_every_named_method_is_accepted_and_round_trips(tmp_path: Path) -> None:
    for method in get_args(VectorMethod):
        v = SteeringVector(torch.arange(4.0), "blocks.0.hook_resid_pre", method=method, details={"k": 1})
        back = load_vector(save_vector(v, tmp_path / f"{method}.safetensors"))
        assert (back.method, back.hook, back.details, back.coefficient) == (method, v.hook, {"k": 1}, 1.0)
        assert torch.equal(back.vector, v.vector)


def test_an_unknown_method_is_refused_in_memory_and_in_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="method must be one of actadd, caa, pca, probe, function_vector, manual"):
        SteeringVector(torch.ones(4), "blocks.0.hook_resid_pre", method="magic")  # type: ignore[arg-type]  # the bad input under test
    from safetensors.torch import save_file

    meta = {"hook": "blocks.0.hook_resid_pre", "d": 4, "coefficient": 1, "mode": "add", "start_pos": 0,
            "end_pos": None, "method": "magic", "model": "", "details": {}}  # fmt: skip
    path = tmp_path / "v.safetensors"
    header = {"format": "circuitscope.steering_vector", "format_version": "1", "metadata": json.dumps(meta)}
    save_file({"vector": torch.ones(4)}, str(path), metadata=header)
    with pytest.raises(LoadError, match="does not hold a usable steering vector"):
        load_vector(path)
