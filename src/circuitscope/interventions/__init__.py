"""Interventions: values that edit a forward pass through hooks, attached with ``model.apply``.

An :class:`Intervention` has ``check(model)`` (refuse a model it does not belong to) and
``hooks(model)`` (the ``(hook name, fn)`` pairs it needs). Implementations live with their
domain: :class:`circuitscope.steering.SteeringVector` and :class:`circuitscope.sae.SAESplice`::

    with model.apply(vector, SAESplice(sae)):
        logits = model(tokens)
    model(tokens, interventions=[vector])
    model.generate(prompt, interventions=[vector])

Plain ``(name, fn)`` hooks keep working everywhere (``model.hooks``, ``fwd_hooks=``, ``hooks=``).
"""

from circuitscope.core.intervention import Intervention, intervention_hooks
from circuitscope.interventions.experts import AblationMode, ExpertAblation
from circuitscope.interventions.positions import PositionCounter

__all__ = ["AblationMode", "ExpertAblation", "Intervention", "PositionCounter", "intervention_hooks"]
