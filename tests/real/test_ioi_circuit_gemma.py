"""Real-model tier: Gemma-3-270M's IOI circuit, head class by head class, with the default configuration."""

from __future__ import annotations

import json
import math
import time

import pytest

import circuitscope as cs
from circuitscope.circuits.ioi.evaluate import ablated_logit_diffs, ioi_template_means
from circuitscope.circuits.ioi.run import IOICircuitConfig, ioi_circuit
from circuitscope.progress import SILENT
from circuitscope.tasks import IOIConfig, ioi_task

pytestmark = pytest.mark.real


def test_gemma_has_name_movers_that_matter_and_a_faithful_circuit_is_measured(gemma: cs.HookedModel) -> None:
    config = IOICircuitConfig(n_prompts=8, n_reference=2, n_random=2)  # `make demo` runs the defaults (16, 4, 4)
    start = time.perf_counter()
    result = ioi_circuit(gemma, config, model_name="gemma-3-270m", on_progress=SILENT)
    seconds = time.perf_counter() - start
    print(f"ioi_circuit on gemma-3-270m, 8 prompts: {seconds:.0f} s; clean logit diff {result.clean_logit_diff:.3f}, "
          f"accuracy {result.clean_accuracy:.2f}")  # fmt: skip
    for name, finding in result.classes.classes.items():
        print(f"  {name}: {[(m.name, round(m.score, 3)) for m in finding.members]} {finding.note}")
    assert result.clean_accuracy >= 0.6 and result.warnings == []
    movers = result.classes.heads("name_mover")
    assert movers, "no name mover found"
    # each mover knocked out alone (mean-ablated over ABC prompts of its template): one lowers the logit difference
    task = ioi_task(gemma, IOIConfig(n_prompts=config.n_prompts, seed=config.seed))
    means = ioi_template_means(gemma, task, config.n_reference, seed=config.seed, batch_size=64, on_progress=SILENT)
    sets = [frozenset()] + [frozenset({h}) for h in movers]
    f = ablated_logit_diffs(gemma, task, means, sets, batch_size=64, on_progress=SILENT)
    assert f[0] == pytest.approx(result.clean_logit_diff, abs=1e-3)
    assert min(f[1:]) < f[0] - 0.05, (movers, f)
    assert result.evaluation is not None and result.circuit is not None
    print(f"  faithfulness F(C)/F(M) = {result.evaluation.faithfulness:.3f}")
    assert math.isfinite(result.evaluation.faithfulness)
    json.dumps(result.to_json())
