"""Expert-level analyses (analysis/experts.py) and the expert ablation intervention, on the tiny MoE recipes."""

from __future__ import annotations

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.analysis import direct_logit_attribution
from circuitscope.analysis.experts import expert_ablation_scan, expert_dla, routing_statistics
from circuitscope.errors import OptionError, ShapeError, UnsupportedAnalysisError
from circuitscope.interventions.experts import ExpertAblation
from circuitscope.tasks.metrics import evaluate_metric
from tests.families.moe import RECIPES
from tests.tiny_models import TinyModels, char_tokenizer, random_task

MOE = [t.name for t in RECIPES]
TEXTS = ["the cat sat on the mat.", "experts, routers and tokens!", "a b c"]


def _task(n: int = 4):
    return random_task(n, 8, seed=0, corrupt=(2, 4))


@pytest.mark.parametrize("name", MOE)
def test_expert_dla_sums_to_the_mlp(tiny: TinyModels, name: str) -> None:
    model = tiny.hooked(name)
    task = _task()
    dla = expert_dla(model, task)
    assert dla.experts.shape == (2, 4) and dla.layers == (0, 1)
    # per prompt the chosen experts' terms scatter-added and averaged vs the MLP output's one projection:
    # float32 rounding of d_model-term sums, ~1e-7 of values ~0.1
    torch.testing.assert_close(dla.experts.sum(1) + dla.shared, dla.mlp, atol=1e-5, rtol=1e-5)
    assert torch.all(dla.chosen.sum(1) == len(task) * 2)  # every prompt chose k = 2 experts at its answer
    assert torch.all(dla.experts[dla.chosen == 0] == 0)  # an expert nobody chose contributes nothing
    assert (dla.shared != 0).all() == (name == "qwen2_moe")
    assert set(dla.to_json()) == {"layers", "experts", "shared", "mlp", "chosen"}


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe", "gpt_oss"])
@torch.no_grad()
def test_zeroing_an_expert_equals_zeroing_its_weights(tiny: TinyModels, name: str) -> None:
    model, naive = tiny.hooked(name), tiny.hooked(name)
    tokens = _task().clean_tokens
    experts = naive.hf_model.get_submodule("model.layers.1.mlp.experts")
    experts.get_parameter("down_proj")[2] = 0
    if hasattr(experts, "down_proj_bias"):
        experts.get_parameter("down_proj_bias")[2] = 0
    ablated = model(tokens, interventions=[ExpertAblation(1, 2, "zero")])
    # weight 0 times the expert's output vs the output 0 times its weight: both add exact zeros
    torch.testing.assert_close(ablated, naive(tokens), atol=0, rtol=0)
    assert not torch.allclose(ablated, model(tokens), atol=1e-4)


@torch.no_grad()
def test_dropping_an_expert_reroutes_the_family_way(tiny: TinyModels) -> None:
    model = tiny.hooked("mixtral")
    tokens = _task().clean_tokens
    names = ["blocks.0.mlp.hook_expert_indices", "blocks.0.mlp.hook_expert_weights", "blocks.0.hook_mlp_out"]
    _, clean = model.run_with_cache(tokens, names=names)
    _, dropped = model.run_with_cache(tokens, names=names, interventions=[ExpertAblation(0, 1, "drop")])
    index = dropped["blocks.0.mlp.hook_expert_indices"]
    assert not (index == 1).any()
    torch.testing.assert_close(dropped["expert_weights", 0].sum(-1), torch.ones(index.shape[:-1]), atol=1e-6, rtol=0)
    kept = ~(clean["blocks.0.mlp.hook_expert_indices"] == 1).any(-1)  # tokens that never chose expert 1
    assert kept.any() and (~kept).any()
    # the same experts with the same weights (dropping a loser renormalises p / sum p the same): float32 rounding
    torch.testing.assert_close(dropped["mlp_out", 0][kept], clean["mlp_out", 0][kept], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(dropped["mlp_out", 0][~kept], clean["mlp_out", 0][~kept], atol=1e-4)


@torch.no_grad()
def test_ablation_scan_is_one_ablation_per_cell(tiny: TinyModels) -> None:
    model = tiny.hooked("olmoe")
    task = _task()
    scan = expert_ablation_scan(model, task, "zero")
    assert scan.scores.shape == (2, 4) and scan.axes == ("layer", "expert")
    rows = torch.arange(len(task))
    logits = model(task.clean_tokens, interventions=[ExpertAblation(1, 3, "zero")])[rows, task.answer_pos]
    expected = float(evaluate_metric("logit_diff", logits, task.correct, task.incorrect).mean())
    assert scan.raw[1, 3].item() == pytest.approx(expected, abs=1e-6)
    assert scan.scores[1, 3].item() == pytest.approx(expected - scan.clean_value, abs=1e-6)
    assert scan.to_json()["labels"] == {"layer": ["0", "1"], "expert": ["0", "1", "2", "3"]}


def test_ablation_refuses_a_layer_or_expert_outside_the_model(tiny: TinyModels) -> None:
    model = tiny.hooked("mixtral")
    tokens = _task().clean_tokens
    with pytest.raises(ShapeError, match="layer 5 has no mixture-of-experts MLP"):
        model(tokens, interventions=[ExpertAblation(5, 0)])
    with pytest.raises(ShapeError, match="expert 4 is out of range"):
        model(tokens, interventions=[ExpertAblation(0, 4)])
    with pytest.raises(OptionError, match="mode must be one of"):
        ExpertAblation(0, 0, "halve")  # type: ignore[arg-type]  # a bad mode on purpose
    with pytest.raises(UnsupportedAnalysisError, match="has no mixture-of-experts layers"):
        tiny.text()(tokens, interventions=[ExpertAblation(0, 0)])


@pytest.mark.parametrize("name", ["qwen3_moe", "gpt_oss"])
@torch.no_grad()
def test_routing_statistics_count_every_choice(tiny: TinyModels, name: str) -> None:
    model: HookedModel = tiny.hooked(name, char_tokenizer())
    stats = routing_statistics(model, TEXTS, top=3)
    lengths = [model.to_tokens(t).shape[1] for t in TEXTS]
    assert stats.n_tokens == sum(lengths) and stats.top_k == 2 and stats.n_experts == 4
    assert [r.layer for r in stats.layers] == [0, 1]
    for routing in stats.layers:
        assert sum(routing.counts) == stats.n_tokens * stats.top_k
        assert sum(routing.fractions) == pytest.approx(1.0)
        assert 0 <= routing.balance <= 1 + 1e-12
        assert sum(routing.mean_probability) == pytest.approx(1.0)
        for expert, tops in enumerate(routing.top_tokens):
            assert len(tops) == min(3, routing.counts[expert])
            assert [t.probability for t in tops] == sorted((t.probability for t in tops), reverse=True)
            for top in tops:  # each listed token really chose this expert, with that router probability
                _, cache = model.run_with_cache(model.to_tokens(TEXTS[top.text]), names="*mlp.hook_*")
                assert expert in cache["expert_indices", routing.layer][0, top.position].tolist()
                probs = torch.softmax(cache["router_logits", routing.layer][0, top.position], -1)
                assert probs[expert].item() == pytest.approx(top.probability, abs=1e-6)
    assert stats.to_json()["layers"][0]["layer"] == 0


def test_routing_statistics_of_one_layer_and_bad_input(tiny: TinyModels) -> None:
    model = tiny.hooked("mixtral", char_tokenizer())
    one = routing_statistics(model, TEXTS, layers=[1])
    assert [r.layer for r in one.layers] == [1]
    with pytest.raises(ShapeError, match="layer 2 has no mixture-of-experts MLP"):
        routing_statistics(model, TEXTS, layers=[2])
    with pytest.raises(OptionError, match="need some text"):
        routing_statistics(model, ["  "])
    with pytest.raises(UnsupportedAnalysisError, match=r"\(family llama\) has no mixture-of-experts layers"):
        routing_statistics(tiny.text(), TEXTS)


def test_neuron_level_dla_refuses_a_mixture_of_experts_and_names_the_per_expert_one(tiny: TinyModels) -> None:
    model = tiny.hooked("mixtral")
    task = random_task(2, 6, seed=0, corrupt=(2, 3))
    with pytest.raises(UnsupportedAnalysisError, match=r"mixtures of experts.*expert_dla"):
        direct_logit_attribution(model, task)
