"""A toy run's checkpoint as a model: ``RUN/checkpoints/step_XXXXXXX`` opened as a :class:`HookedModel`.

The architecture comes from the run's ``run.json`` (the model configuration the trainer recorded),
the weights from the checkpoint's ``model.safetensors``; a toy model has no tokenizer.
"""

from __future__ import annotations

import re
from pathlib import Path

from circuitscope.core.files import read_json_object
from circuitscope.core.hooked_model import HookedModel
from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer
from circuitscope.toy.checkpoint import load_model_weights
from circuitscope.toy.errors import CheckpointError

__all__ = ["is_toy_checkpoint", "load_toy_checkpoint"]

_STEP = re.compile(r"step_(\d{7,})")


def is_toy_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a step folder of a toy run (``.../checkpoints/step_XXXXXXX`` beside a ``run.json``)."""
    p = Path(path)
    return bool(_STEP.fullmatch(p.name)) and p.parent.name == "checkpoints" and (p.parent.parent / "run.json").is_file()


def load_toy_checkpoint(path: str | Path) -> HookedModel:
    """The toy model saved in the step folder ``path``, in eval mode."""
    p = Path(path)
    if not is_toy_checkpoint(p):
        raise CheckpointError(
            f"{p} is not a toy checkpoint: give a step folder such as RUN/checkpoints/step_0000500 of a "
            "`circuitscope lab` run"
        )
    run = p.parent.parent
    payload = read_json_object(run / "run.json", CheckpointError)
    identity = payload.get("identity")
    model = identity.get("model") if isinstance(identity, dict) else None
    if not isinstance(model, dict) or model.get("model_type") != ToyConfig.model_type:
        raise CheckpointError(f"{run / 'run.json'} does not describe a toy transformer, so {p} cannot be opened")
    toy = ToyTransformer(ToyConfig.from_dict(model))
    match = _STEP.fullmatch(p.name)
    assert match is not None
    toy.load_state_dict(load_model_weights(run, int(match.group(1))))
    return HookedModel(toy.eval())
