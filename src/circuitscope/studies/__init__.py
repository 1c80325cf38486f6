"""Studies: a hypothesis from the seed documents tested in one call, with its evidence and its uncertainty.

Each study is a function over ``(model, config)`` returning a typed result with the numbers, their 95%
bootstrap intervals and a one-paragraph :meth:`answer`; its report is in :mod:`circuitscope.report.studies`
and its command is ``circuitscope study NAME``.

- :func:`truth_framing_study`: is "X and truthful" less truthful than "truthful"?
- :func:`agreement_framing_study`: does the model conform to an affirmative or a disconfirming question?
- :func:`whispers_study`: what does half a layer remember of the input? (report: :mod:`circuitscope.report.whispers`)
"""

from circuitscope.studies.agreement_framing import (
    AgreementFramingConfig,
    AgreementFramingResult,
    KindScore,
    agreement_framing_study,
)
from circuitscope.studies.errors import StudyConfigError
from circuitscope.studies.estimates import Estimate, difference, estimate
from circuitscope.studies.items import ACTIONS, Action, ActionKind, StudyStatement, study_statements
from circuitscope.studies.truth_framing import PersonaScore, TruthFramingConfig, TruthFramingResult, truth_framing_study
from circuitscope.studies.whispers import ReadoutScore, Reconstruction, WhispersResult, whispers_study
from circuitscope.studies.whispers_config import Readout, WhispersConfig

__all__ = [
    "ACTIONS",
    "Action",
    "ActionKind",
    "AgreementFramingConfig",
    "AgreementFramingResult",
    "Estimate",
    "KindScore",
    "PersonaScore",
    "Readout",
    "ReadoutScore",
    "Reconstruction",
    "StudyConfigError",
    "StudyStatement",
    "TruthFramingConfig",
    "TruthFramingResult",
    "WhispersConfig",
    "WhispersResult",
    "agreement_framing_study",
    "difference",
    "estimate",
    "study_statements",
    "truth_framing_study",
    "whispers_study",
]
