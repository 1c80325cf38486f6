"""MLP weight views against the Hugging Face modules, and the family facts adapters declare for core."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from circuitscope import HookedModel, ShapeError
from circuitscope.core import loading
from circuitscope.errors import UnsupportedAnalysisError
from circuitscope.models import all_adapters
from circuitscope.toy.model import build_toy
from tests.tiny_models import TINY, VOCAB, TinyModels

CORE = Path(__file__).resolve().parents[2] / "src" / "circuitscope" / "core"

_TOY = {
    "toy": lambda: build_toy(seed=0, d_vocab=VOCAB, n_ctx=16, d_model=16, n_layers=2, n_heads=2, bias=True),
    "toy_attn_only": lambda: build_toy(seed=0, d_vocab=VOCAB, n_ctx=16, d_model=16, n_layers=2, attn_only=True),
}
FAMILIES = sorted([t.name for t in TINY] + list(_TOY))


@pytest.fixture(scope="module", params=FAMILIES)
def model(request: pytest.FixtureRequest, tiny: TinyModels) -> HookedModel:
    name = request.param
    return HookedModel(_TOY[name]()) if name in _TOY else tiny.hooked(name)


@torch.no_grad()
def test_mlp_views_reproduce_the_modules(model: HookedModel) -> None:
    """``x @ W_in + b_in``, ``x @ W_gate`` and ``h @ W_out + b_out`` are what the family's own modules compute."""
    c = model.cfg
    if c.d_mlp == 0 and c.mixer is not None:  # Mamba's blocks have no MLP: a clear error, not a view
        with pytest.raises(UnsupportedAnalysisError, match=f"{c.family} blocks have no MLP"):
            _ = model.W_in
        return
    if model.adapter.experts is not None:  # a mixture of experts has no single MLP: a clear error, not a view
        with pytest.raises(ShapeError, match="mixture of experts"):
            _ = model.W_in
        return
    assert model.W_in.shape == (c.n_layers, c.d_model, c.d_mlp)
    assert model.b_in.shape == (c.n_layers, c.d_mlp)
    assert model.W_out.shape == (c.n_layers, c.d_mlp, c.d_model)
    assert model.b_out.shape == (c.n_layers, c.d_model)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, c.d_model, generator=g)
    h = torch.randn(5, c.d_mlp, generator=g)
    for layer, mods in enumerate(model.wiring.blocks):
        assert mods.mlp_in is not None and mods.mlp_down is not None  # a dense MLP (experts returned above)
        up = mods.mlp_in_linear if mods.mlp_in_linear is not None else mods.mlp_in
        gate_x, up_x = mods.mlp_in(x).chunk(2, -1) if mods.mlp_gate_up is not None else (mods.mlp_in(x), up(x))
        # a matmul plus bias vs the module's fused addmm: float32 rounding of d_model-term sums (~1e-7 of ~1)
        torch.testing.assert_close(x @ model.W_in[layer] + model.b_in[layer], up_x, atol=1e-5, rtol=1e-5)
        down = mods.mlp_down(h) * c.residual_multiplier  # W_out includes a family's residual multiplier (Granite)
        torch.testing.assert_close(h @ model.W_out[layer] + model.b_out[layer], down, atol=1e-5, rtol=1e-5)
        one = model.mlp_weights(layer)
        assert torch.equal(one.W_in, model.W_in[layer]) and torch.equal(one.W_out, model.W_out[layer])
        if c.gated_mlp:
            assert one.W_gate is not None
            torch.testing.assert_close(x @ model.W_gate[layer], gate_x, atol=1e-5, rtol=1e-5)
        else:
            assert one.W_gate is None
    if not c.gated_mlp:
        with pytest.raises(ShapeError, match="not gated"):
            _ = model.W_gate


@torch.no_grad()
def test_mlp_views_reproduce_mlp_out(model: HookedModel) -> None:
    """Where nothing follows the output projection, ``hook_post @ W_out + b_out`` is ``hook_mlp_out``."""
    if model.cfg.d_mlp == 0 and model.cfg.mixer is not None:
        pytest.skip("Mamba's blocks have no MLP (test_mlp_views_reproduce_the_modules checks the error)")
    if model.cfg.residual == "post_norm" or model.wiring.blocks[0].mlp_out_norm is not None:
        pytest.skip("a norm follows the MLP's output projection")
    if model.adapter.experts is not None:
        pytest.skip("a mixture of experts has no single output projection (tests/core/test_moe.py checks its sum)")
    tokens = torch.randint(1, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    _, cache = model.run_with_cache(tokens, names=lambda n: n.endswith(("mlp.hook_post", "hook_mlp_out")))
    for layer in range(model.cfg.n_layers):
        out = cache["post", layer] @ model.W_out[layer] + model.b_out[layer]
        # the same product as the module's, summed in BLAS's order or ours: float32 rounding (~1e-7 of ~1)
        torch.testing.assert_close(out, cache["mlp_out", layer], atol=1e-5, rtol=1e-5)


def test_final_softcap_comes_from_the_adapter(tiny: TinyModels) -> None:
    gemma2 = tiny.hooked("gemma2_softcap")
    assert gemma2.wiring.final_softcap() == 3.0
    assert tiny.hooked("llama_mha").wiring.final_softcap() is None
    logits = torch.tensor([-100.0, 0.5, 100.0])
    assert torch.equal(gemma2.wiring.softcap_logits(logits), torch.tanh(logits / 3.0) * 3.0)


def test_encoders_load_with_their_head_and_decoders_as_causal_lms() -> None:
    bert = transformers.BertConfig(architectures=["BertForMaskedLM"])
    assert loading._auto_class(bert) is transformers.AutoModelForMaskedLM
    assert loading._auto_class(transformers.BertConfig(architectures=["BertModel"])) is transformers.AutoModel
    assert loading._auto_class(transformers.BertConfig()) is transformers.AutoModel
    llama = transformers.LlamaConfig(architectures=["LlamaForCausalLM"])
    assert loading._auto_class(llama) is transformers.AutoModelForCausalLM


@torch.no_grad()
def test_dequantized_copy_of_a_scaled_embedding_family(tiny: TinyModels) -> None:
    """Gemma's computed ``embed_scale`` buffer is not a missing weight."""
    model = tiny.hf("gemma3")
    copy = loading.dequantized_copy(model, torch.float32)
    tokens = torch.randint(1, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))
    assert torch.equal(copy(input_ids=tokens).logits, model(input_ids=tokens).logits)


def _code_strings(path: Path) -> list[str]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_core_spells_no_family_fact() -> None:
    """Family names and the config attributes / buffers / classes adapters declare stay in the adapters."""
    adapters = all_adapters()
    names = {a.family for a in adapters} | {t for a in adapters for t in a.model_types}
    facts = (
        {v for a in adapters for v in (a.final_softcap_attr, a.embed_scale_buffer, a.parallel_residual_attr) if v}
        | {c for a in adapters for c in a.masked_lm_classes}
        | {"MaskedLM"}
        | {attr for a in adapters for _, attr in a.config_names}
        | {
            v
            for a in adapters
            for v in (
                a.embed_multiplier_attr,
                a.residual_multiplier_attr,
                a.logit_multiplier_attr,
                a.logit_divisor_attr,
            )
            if v
        }
    )
    found = [
        (path.name, s)
        for path in sorted(CORE.glob("*.py"))
        for s in _code_strings(path)
        if s in names or any(f in s for f in facts)
    ]
    assert found == []


@pytest.mark.slow
def test_models_register_the_toy_family_without_circuitscope_toy(tmp_path: Path) -> None:
    """A saved toy model loads in a fresh process that never imports ``circuitscope.toy``."""
    build_toy(seed=0, d_vocab=20, n_ctx=8, d_model=16, n_layers=1, n_heads=2).save_pretrained(tmp_path)
    script = (
        "import sys\n"
        "from circuitscope import load_model\n"
        f"model = load_model({str(tmp_path)!r})\n"
        "assert not [m for m in sys.modules if m.startswith('circuitscope.toy')], 'circuitscope.toy was imported'\n"
        "print(model.cfg.family)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "toy"
