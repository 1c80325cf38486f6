"""Path patching: batched equals the naive reference, and both equal independent hand-built interventions."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest
import torch

from circuitscope import HookedModel, ShapeError
from circuitscope.analysis._path_patching import naive_path_patching, path_patching
from circuitscope.core.hook_points import HookPoint
from circuitscope.report.patching import plot_path_patching
from circuitscope.tasks import Task, evaluate_metric
from tests.tiny_models import BY_NAME, VOCAB


@cache
def _model(family: str) -> HookedModel:
    return HookedModel(BY_NAME[family].build())


def _task(n: int = 4, seq: int = 7, metric: str = "logit_diff") -> Task:
    g = torch.Generator().manual_seed(3)
    clean = torch.randint(1, VOCAB, (n, seq), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1:3] = torch.randint(1, VOCAB, (n, 2), generator=g)
    answer_pos = torch.tensor([seq - 1, seq - 2, seq - 1, seq - 3])[:n]
    correct = torch.randint(0, VOCAB, (n,), generator=g)
    incorrect = torch.randint(0, VOCAB, (n,), generator=g)
    return Task("tiny", ["c"] * n, ["x"] * n, clean, corrupted, answer_pos, correct, incorrect, metric=metric)  # type: ignore[arg-type]


def _metric(model: HookedModel, task: Task, hooks: list) -> float:
    rows = torch.arange(len(task))
    clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
    logits = model.run_with_hooks(task.clean_tokens, fwd_hooks=hooks)[rows, task.answer_pos]
    return float(evaluate_metric(task.metric, logits, task.correct, task.incorrect, clean_logits).mean())


RECEIVERS = [("logits", ("q",)), ([(1, 0), (1, 3)], ("q",)), ([(1, 2)], ("k", "v")), ([(1, 1)], ("q", "k", "v"))]


@pytest.mark.parametrize("family", ["llama_gqa", "gpt2", "gemma3"])
@pytest.mark.parametrize("metric", ["logit_diff", "kl"])
def test_batched_path_patching_equals_the_naive_loop(family: str, metric: str) -> None:
    model = _model(family)
    task = _task(metric=metric)
    for receivers, inputs in RECEIVERS:
        fast = path_patching(model, task, receivers, inputs=inputs, batch_size=12)  # type: ignore[arg-type]
        slow = naive_path_patching(model, task, receivers, inputs=inputs)  # type: ignore[arg-type]
        # batched (batch_size=12) vs one pass per sender: float32 rounding of metrics ~0.3 (exact here)
        torch.testing.assert_close(fast.raw, slow.raw, atol=2e-5, rtol=1e-4, msg=str(receivers))
        assert fast.clean_value == pytest.approx(slow.clean_value, abs=1e-5)
        assert fast.raw.shape == (model.cfg.n_layers, model.cfg.n_heads)
        assert float(fast.raw.std()) > 0  # some sender matters
    assert model.active_hooks() == []


AT = torch.tensor([2, 5, 3, 1])  # one receiver position per prompt of _task() (answer positions 6, 5, 6, 4)


@pytest.mark.parametrize("family", ["llama_gqa", "gemma3", "gpt2"])
def test_path_patching_at_positions_equals_the_naive_loop(family: str) -> None:
    model = _model(family)
    task = _task()
    for receivers, inputs in RECEIVERS[1:]:
        fast = path_patching(model, task, receivers, inputs=inputs, positions=AT, batch_size=12)  # type: ignore[arg-type]
        slow = naive_path_patching(model, task, receivers, inputs=inputs, positions=AT)  # type: ignore[arg-type]
        torch.testing.assert_close(fast.raw, slow.raw, atol=2e-5, rtol=1e-4, msg=str(receivers))
        everywhere = path_patching(model, task, receivers, inputs=inputs)  # type: ignore[arg-type]
        assert not torch.allclose(fast.raw[0], everywhere.raw[0], atol=1e-4)  # one position is not all of them
    assert model.active_hooks() == []


@pytest.mark.parametrize("family", ["llama_gqa", "gemma3"])
def test_last_layer_queries_matter_only_at_the_answer_position(family: str) -> None:
    """Queries of the last layer at earlier positions change only those positions' outputs, which no later
    layer reads: patching the receivers' queries at the answer position alone equals patching them everywhere."""
    model = _model(family)
    task = _task()
    receivers = [(1, 0), (1, 3)]
    at_answer = path_patching(model, task, receivers, inputs=("q",), positions=task.answer_pos)
    everywhere = path_patching(model, task, receivers, inputs=("q",))
    torch.testing.assert_close(at_answer.raw, everywhere.raw, atol=1e-5, rtol=1e-5)
    elsewhere = path_patching(model, task, receivers, inputs=("q",), positions=task.answer_pos - 1)
    torch.testing.assert_close(elsewhere.raw, torch.full_like(elsewhere.raw, elsewhere.clean_value), atol=1e-5, rtol=0)


def test_bad_positions_are_refused() -> None:
    model = _model("llama_gqa")
    task = _task()
    with pytest.raises(ShapeError, match="leave positions out"):
        path_patching(model, task, "logits", positions=AT)
    with pytest.raises(ShapeError, match="one integer position per prompt"):
        path_patching(model, task, [(1, 0)], positions=AT[:3])
    with pytest.raises(ShapeError, match="inside each prompt"):
        path_patching(model, task, [(1, 0)], positions=task.answer_pos + 1)
    assert model.active_hooks() == []


def _corrupt_head(corrupted_z: torch.Tensor, head: int) -> Callable[[torch.Tensor, HookPoint], torch.Tensor]:
    """A ``hook_z`` hook giving ``head`` its output from the corrupted run (``corrupted_z``), the rest untouched."""

    def noise(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, :, head] = corrupted_z[:, :, head]
        return x

    return noise


@pytest.mark.parametrize("family", ["llama_gqa", "gpt_neox"])
@torch.no_grad()
def test_a_last_layer_sender_into_the_logits_is_noising_activation_patching(family: str) -> None:
    """With no later heads to freeze, the path from a last-layer head to the logits is its whole effect."""
    model = _model(family)
    task = _task()
    result = path_patching(model, task, "logits")
    last = model.cfg.n_layers - 1
    name = f"blocks.{last}.attn.hook_z"
    _, corrupted = model.run_with_cache(task.corrupted_tokens, names=name)
    for head in range(model.cfg.n_heads):
        expected = _metric(model, task, [(name, _corrupt_head(corrupted[name], head))])
        assert float(result.raw[last, head]) == pytest.approx(expected, abs=1e-5)
    change = result.change[last]
    torch.testing.assert_close(change, result.raw[last] - result.clean_value, atol=0, rtol=0)  # defined so
    torch.testing.assert_close(  # normalise() divides (raw - corrupted) by (clean - corrupted): ~1 ulp apart
        result.scores, (result.raw - result.clean_value) / (result.corrupted_value - result.clean_value)
    )


@pytest.mark.parametrize("family", ["llama_gqa", "gemma3", "gpt2"])
@torch.no_grad()
def test_paths_into_every_input_of_the_next_layer_equal_patching_its_normed_input(family: str) -> None:
    """q, k and v of layer 1 are functions of ``blocks.1.ln1.hook_normalized`` only, so path patching a layer-0
    sender into all of them equals patching that normed input with its value from a run where only the sender
    is corrupted (in layer 0 every other head is clean anyway): an intervention built through other hooks."""
    model = _model(family)
    task = _task()
    everyone = [(1, h) for h in range(model.cfg.n_heads)]
    result = path_patching(model, task, everyone, inputs=("q", "k", "v"))
    z, ln1 = "blocks.0.attn.hook_z", "blocks.1.ln1.hook_normalized"
    _, corrupted = model.run_with_cache(task.corrupted_tokens, names=z)
    for head in range(model.cfg.n_heads):
        _, noised = model.run_with_cache(
            task.clean_tokens, names=ln1, fwd_hooks=[(z, _corrupt_head(corrupted[z], head))]
        )

        def feed(x: torch.Tensor, hook: HookPoint, noised: torch.Tensor = noised[ln1]) -> torch.Tensor:
            return noised

        expected = _metric(model, task, [(ln1, feed)])
        assert float(result.raw[0, head]) == pytest.approx(expected, abs=1e-5), head
    # senders in the receivers' layer or later cannot reach them: exactly the clean run
    assert (result.raw[1] == result.clean_value).all() and (result.scores[1] == 0).all()


def test_plot_and_labels() -> None:
    model = _model("llama_gqa")
    result = path_patching(model, _task(), [(1, 2), (1, 0)], inputs=("q",))
    assert result.receivers == "q of L1H0, L1H2"
    assert result.axes == ("layer", "head") and result.labels["head"] == ["0", "1", "2", "3"]
    fig = plot_path_patching(result)
    assert "q of L1H0, L1H2" in fig.layout.title.text  # type: ignore[attr-defined]


def test_bad_receivers_are_refused() -> None:
    model = _model("llama_gqa")
    task = _task()
    with pytest.raises(ShapeError, match="'logits' or a list"):
        path_patching(model, task, "logit")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="out of range"):
        path_patching(model, task, [(5, 0)])
    with pytest.raises(ShapeError, match="out of range"):
        path_patching(model, task, [(1, 9)])
    with pytest.raises(ShapeError, match="subset of"):
        path_patching(model, task, [(1, 0)], inputs=("z",))  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="no receiver heads"):
        path_patching(model, task, [])
    assert model.active_hooks() == []


@pytest.mark.real
@torch.no_grad()
def test_path_patching_into_the_logits_runs_on_gemma_ioi() -> None:
    import circuitscope as cs
    from circuitscope.tasks import IOIConfig, ioi_task

    model = cs.load_model(cs.DEFAULT_MODEL)
    task = ioi_task(model, IOIConfig(n_prompts=8, seed=1))
    result = path_patching(model, task, "logits")
    assert result.scores.shape == (18, 4) and torch.isfinite(result.scores).all()
    assert result.clean_value > result.corrupted_value
    last = model.cfg.n_layers - 1  # the last layer's heads: path patching is their plain noising patch
    name = f"blocks.{last}.attn.hook_z"
    _, corrupted = model.run_with_cache(task.corrupted_tokens, names=name)

    def noise(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, :, 1] = corrupted[name][:, :, 1]
        return x

    assert float(result.raw[last, 1]) == pytest.approx(_metric(model, task, [(name, noise)]), abs=1e-3)
    assert model.active_hooks() == []
