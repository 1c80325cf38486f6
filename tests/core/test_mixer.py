"""State-space mixer layers (Mamba, Mamba 2, Bamba's): their hooks mean what they say, residual-stream analyses
work through the residual names, and per-head analyses are refused with the shared capability error."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from typer.testing import CliRunner

from circuitscope import sae as S  # noqa: N812
from circuitscope.analysis import direct_logit_attribution, head_ablation_importance, logit_lens, path_patching
from circuitscope.analysis._heads import many_detector_scores
from circuitscope.analysis.patching import activation_patching
from circuitscope.circuits.intervene import graph_of
from circuitscope.cli.main import app
from circuitscope.core.hook_points import HookPoint
from circuitscope.errors import HookNameError, UnsupportedAnalysisError
from circuitscope.steering.vector import SteeringVector
from tests.sae.conftest import TEXT, char_tokenizer
from tests.tiny_models import VOCAB, TinyModels, random_task


def _no_heads(analysis: str) -> str:
    return re.escape(f"mamba has no attention heads: {analysis} needs attention layers (blocks.L.attn.*); use ")


def _tokens(n: int = 2, seq: int = 10) -> torch.Tensor:
    return torch.randint(1, VOCAB, (n, seq), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("name", "layer"), [("mamba", 1), ("mamba2", 0)])
@torch.no_grad()
def test_mixer_hooks_are_the_mixers_own_tensors(tiny: TinyModels, name: str, layer: int) -> None:
    """Each hook is a module's own input or output: re-applying the module to the hooked input gives it bit for bit."""
    model = tiny.hooked(name)
    _, cache = model.run_with_cache(_tokens(), names=lambda n: n.startswith(f"blocks.{layer}."))
    hook = {n.removeprefix(f"blocks.{layer}."): t for n, t in cache.items()}
    mixer: Any = model.wiring.blocks[layer].block.get_submodule("mixer")  # MambaMixer / Mamba2Mixer, by name
    assert torch.equal(mixer.in_proj(hook["ln1.hook_normalized"]), hook["mixer.hook_in_proj"])
    assert torch.equal(mixer.out_proj(hook["mixer.hook_out_proj_in"]), hook["hook_mixer_out"])
    if name == "mamba":
        assert torch.equal(mixer.x_proj(hook["mixer.hook_conv"]), hook["mixer.hook_x_proj"])
    else:  # the gated RMSNorm between the scan and out_proj, gated by in_proj's first part
        gate = hook["mixer.hook_in_proj"][..., : mixer.intermediate_size]
        assert torch.equal(mixer.norm(hook["mixer.hook_ssm_out"], gate), hook["mixer.hook_out_proj_in"])


@torch.no_grad()
def test_mamba_hook_conv_is_the_causal_convolution_of_in_proj(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba")
    _, cache = model.run_with_cache(_tokens(), names=["blocks.1.mixer.hook_in_proj", "blocks.1.mixer.hook_conv"])
    mixer: Any = model.wiring.blocks[1].block.get_submodule("mixer")
    # the causal depthwise convolution of in_proj's x half, then SiLU: recomputed by hand
    x = cache["blocks.1.mixer.hook_in_proj"][..., : mixer.intermediate_size].transpose(1, 2)
    kernel = mixer.conv1d.weight  # [d_inner 1 width]
    conv = F.conv1d(F.pad(x, (kernel.shape[-1] - 1, 0)), kernel, mixer.conv1d.bias, groups=x.shape[1])
    # F.conv1d on a left-padded input vs the model's padded-both-sides conv cut to length: the same products
    torch.testing.assert_close(F.silu(conv).transpose(1, 2), cache["blocks.1.mixer.hook_conv"], atol=1e-6, rtol=0)


@torch.no_grad()
def test_rewriting_hook_conv_reaches_the_scan(tiny: TinyModels) -> None:
    """x enters both x_proj and the scan; with x = 0 the state never leaves 0 and y = C h + D x = 0, so the gated
    output entering out_proj is exactly 0 (it would not be if only x_proj had seen the rewrite)."""
    model = tiny.hooked("mamba")
    _, clean = model.run_with_cache(_tokens(), names="blocks.0.mixer.hook_out_proj_in")
    _, cache = model.run_with_cache(
        _tokens(),
        names="blocks.0.mixer.hook_out_proj_in",
        fwd_hooks=[("blocks.0.mixer.hook_conv", lambda x, hook: x * 0)],
    )
    assert clean["blocks.0.mixer.hook_out_proj_in"].abs().sum() > 0
    assert torch.equal(
        cache["blocks.0.mixer.hook_out_proj_in"], torch.zeros_like(clean["blocks.0.mixer.hook_out_proj_in"])
    )


def test_patching_the_residual_stream_recovers_the_clean_run(tiny: TinyModels) -> None:
    """Prompts that differ only at position 2: patching resid_pre of layer 0 there gives back the clean run (1),
    anywhere else leaves the corrupted one (0), since a causal mixer only carries position 2 forward."""
    model = tiny.hooked("mamba")
    task = random_task(4, 7, seed=0, corrupt=(2, 3))
    result = activation_patching(model, task, "resid_pre", layers=[0])
    # batched patched runs vs the unbatched clean/corrupted runs they normalise by: float32 rounding only
    torch.testing.assert_close(result.scores[0, 2], torch.tensor(1.0), atol=1e-5, rtol=0)
    others = torch.cat([result.scores[0, :2], result.scores[0, 3:]])
    torch.testing.assert_close(others, torch.zeros(task.seq_len - 1), atol=1e-5, rtol=0)
    mixers = activation_patching(model, task, "mixer_out")  # the mixers' outputs, in the attention slot
    assert mixers.scores.shape == (model.cfg.n_layers, task.seq_len)
    torch.testing.assert_close(mixers.scores[:, :2], torch.zeros(2, 2), atol=1e-5, rtol=0)  # before the change


@torch.no_grad()
def test_direct_logit_attribution_over_mixer_components_sums_to_the_logit_diff(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba")
    task = random_task(3, 8, seed=1, corrupt=None)
    logits, cache = model.run_with_cache(task.clean_tokens)
    rows = torch.arange(len(task))
    stack = cache.decompose_resid()
    assert stack.labels == ["embed", "0_mixer_out", "1_mixer_out"]
    normed = cache.apply_ln_to_stack(stack).tensor[:, rows, task.answer_pos]  # [component batch d_model]
    direction = (model.W_U[:, task.correct] - model.W_U[:, task.incorrect]).T  # [batch d_model]
    per_component = (normed * direction).sum(-1)  # [component batch]
    answer = logits[rows, task.answer_pos]
    diff = answer[rows, task.correct] - answer[rows, task.incorrect]
    # RMSNorm without bias, lm_head without bias: the components' shares add up to the logit difference
    # (regrouped float32 sums of ~10 terms of size ~1: measured 1e-6)
    torch.testing.assert_close(per_component.sum(0), diff, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_logit_lens_ends_at_the_models_own_logits(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba2")
    task = random_task(3, 8, seed=2, corrupt=None)
    lens = logit_lens(model, task)
    assert lens.layers == ["0_pre", "1_pre", "final"]
    answer = model(task.clean_tokens)[torch.arange(3), task.answer_pos]
    diff = (answer[torch.arange(3), task.correct] - answer[torch.arange(3), task.incorrect]).mean()
    # the lens decodes the cached final residual the way the model does: the same float32 operations
    torch.testing.assert_close(lens.logit_diff[-1], diff, atol=1e-6, rtol=0)


@torch.no_grad()
def test_steering_the_last_residual_stream_adds_the_vector_exactly(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba")
    tokens = _tokens()
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    _, clean = model.run_with_cache(tokens, names=last)
    vector = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    steer = SteeringVector(vector, last, coefficient=2.0)
    steered = model(tokens, interventions=steer)
    # nothing runs after the last block but the final norm and the unembedding
    torch.testing.assert_close(steered, model.unembed_resid(clean[last] + 2.0 * vector), atol=1e-6, rtol=0)


def test_an_sae_trains_on_the_residual_stream_and_splices_back(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.hooked("mamba", char_tokenizer())
    hook = "blocks.1.hook_resid_post"
    cfg = S.CollectConfig(hook=hook, tokens=600, context_size=16, batch_size=8, tokens_per_shard=300)
    store = S.collect_activations(model, S.Corpus("sonnet", [TEXT]), tmp_path / "acts", cfg)
    contexts = S.build_contexts(model, S.Corpus("sonnet", [TEXT]), 16, seed=0)
    acts, _ = store.load_shard(0)
    _, cache = model.run_with_cache(contexts.tokens[:2], hook)
    # the store's batches of 8 contexts vs these two: another GEMM shape, float32 rounding
    torch.testing.assert_close(acts[:30], cache[hook][:, 1:].reshape(-1, store.d_in), atol=1e-5, rtol=0)
    train = S.TrainConfig(architecture="topk", d_sae=64, k=4, tokens=600 * 4, batch_size=100, lr=3e-3, warmup_steps=2)
    result = S.train_sae(store, train, progress_bar=False)
    assert result.sae.cfg.hook_name == hook
    tokens = contexts.tokens[:2]
    with torch.no_grad():
        clean = model(tokens)
        kept = S.run_with_sae(model, tokens, result.sae, keep_error=True)
        spliced = S.run_with_sae(model, tokens, result.sae)
    # recons + (x - recons) re-adds the error: one rounding of values ~1 (<=2 ulp)
    torch.testing.assert_close(kept, clean, atol=1e-5, rtol=0)
    assert not torch.allclose(spliced, clean, atol=1e-4)  # the reconstruction alone is not the activation


def test_per_head_analyses_refuse_a_state_space_model(tiny: TinyModels) -> None:
    model = tiny.hooked("mamba")
    task = random_task(2, 6, seed=0, corrupt=(2, 3))
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("head ablation")):
        head_ablation_importance(model, task.clean_tokens)
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("path patching over heads")):
        path_patching(model, task)
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("head detectors (attention patterns)")):
        many_detector_scores(model, task.clean_tokens)
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("circuit discovery over heads (EAP, EAP-IG, ACDC)")):
        graph_of(model)
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("direct logit attribution per head and neuron")):
        direct_logit_attribution(model, task)
    with pytest.raises(UnsupportedAnalysisError, match=_no_heads("patching head_out (per head)")):
        activation_patching(model, task, "head_out")
    with pytest.raises(UnsupportedAnalysisError, match="mamba has no attention heads"):
        _ = model.W_Q
    with pytest.raises(UnsupportedAnalysisError, match="mamba blocks have no MLP"):
        _ = model.W_in
    with pytest.raises(HookNameError, match=r"mamba has no attention heads.*blocks\.0\.hook_mixer_out"):
        model.add_hook("blocks.0.attn.hook_z", lambda x, hook: None)
    assert model.active_hooks() == []


def test_a_hybrid_refuses_heads_only_where_it_has_none(tiny: TinyModels) -> None:
    model = tiny.hooked("bamba")  # layer 0: a Mamba 2 mixer, layer 1: attention
    tokens = _tokens(2, 6)
    with pytest.raises(UnsupportedAnalysisError, match=r"bamba layer 0 is a state-space mixer layer.*\[1\]"):
        many_detector_scores(model, tokens)
    with pytest.raises(HookNameError, match="bamba layer 0 is a state-space mixer layer"):
        model.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    seen: list[str] = []

    def grab(x: torch.Tensor, hook: HookPoint) -> None:
        seen.append(hook.name)

    model.run_with_hooks(tokens, fwd_hooks=[("blocks.*.attn.hook_pattern", grab)])  # the attention layer's heads
    assert seen == ["blocks.1.attn.hook_pattern"]


def test_info_prints_a_model_without_heads(tiny: TinyModels) -> None:
    result = CliRunner().invoke(app, ["info", str(tiny.folder("mamba")), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["n_heads"] == 0 and payload["config"]["mixer"] == "selective_scan"
    assert payload["config"]["mixer_layers"] == [0, 1]
    assert "blocks.1.hook_mixer_out" in payload["hook_names"]
    result = CliRunner().invoke(app, ["info", str(tiny.folder("mamba"))])
    assert result.exit_code == 0 and "hook_mixer_out" in result.stdout


@torch.no_grad()
def test_patching_a_hybrids_sublayers_defaults_to_the_layers_that_have_them(tiny: TinyModels) -> None:
    """Bamba: attn_out patches its attention layers, mixer_out its mixer layers; a layer without one is refused."""
    model = tiny.hooked("bamba")
    cfg = model.cfg
    mixers = list(cfg.mixer_layers)
    attention = [layer for layer in range(cfg.n_layers) if layer not in mixers]
    assert mixers and attention
    task = random_task(4, 7, seed=0, corrupt=(2, 3))
    by_default = activation_patching(model, task, "attn_out")
    explicit = activation_patching(model, task, "attn_out", layers=attention)
    assert torch.equal(by_default.scores, explicit.scores)
    assert by_default.scores.shape[0] == len(attention)
    assert activation_patching(model, task, "mixer_out").scores.shape[0] == len(mixers)
    with pytest.raises(UnsupportedAnalysisError, match=rf"layers \[{mixers[0]}\] have no hook_attn_out"):
        activation_patching(model, task, "attn_out", layers=[mixers[0]])
    with pytest.raises(
        UnsupportedAnalysisError, match=rf"bamba layer {mixers[0]} is a state-space mixer layer with no attention heads"
    ):
        activation_patching(model, task, "head_out", layers=[mixers[0]])
    with pytest.raises(UnsupportedAnalysisError, match=r"has no blocks\.L\.hook_mixer_out"):
        activation_patching(tiny.hooked("llama_gqa"), task, "mixer_out")
