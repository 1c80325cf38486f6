"""GGUF files of every family transformers' GGUF loader reads and circuitscope has an adapter for.

Each tiny recipe of such a family (TINY, tests/families/) is written as an F32 GGUF file the way
llama.cpp lays it out (tests/gguf_writer.py) and loaded with ``load_model``: its logits must equal
the source model's exactly. Where transformers' loader does not read a config field from the file
(``GGUF_LIMITS`` in circuitscope.models.gguf_limits, also shown in docs/models.md), the source is the
recipe with those fields at their config-class defaults, and a second test checks that the loader
really loses them; a family whose files do not load at all is checked to still fail, so that an
entry cannot outlive the limit it records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers as tf

from circuitscope.core.loading import load_model
from circuitscope.errors import LoadError, UnsupportedModelError
from circuitscope.models import adapter_for, all_adapters
from circuitscope.models.gguf_limits import GGUF_LIMITS, gguf_readable
from tests.families.recipe import VOCAB, seeded
from tests.gguf_writer import GGUFWriteError, write_gguf
from tests.tiny_models import TINY, TinyModels

# Mamba's file stores A = -exp(A_log) (llama.cpp's layout); transformers takes log(-A) back, which is off
# by float32 rounding (measured 3e-8 on the logits of the tiny Mamba), so its logits match to 1e-6, not bit for bit.
_INEXACT = {"mamba": 1e-6}
# config entries a GGUF file does not need to carry (names, dtype, special-token ids of the tiny vocabulary)
_IGNORED = {"_name_or_path", "_model_name_or_path", "dtype", "transformers_version", "quantization_config"}
_IGNORED |= {"bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id", "architectures"}


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))


def _defaults(config: Any) -> Any:
    """The config class's defaults, for a model of as many layers (per-layer defaults have the right length)."""
    return type(config)(num_hidden_layers=config.num_hidden_layers)


def _with_defaults(model: Any, fields: tuple[str, ...]) -> Any:
    """The same recipe (same seeded init) with ``fields`` of its config at the config class's defaults."""
    cfg = model.config
    defaults = _defaults(cfg)
    config = type(cfg)(**{**cfg.to_dict(), **{f: getattr(defaults, f) for f in fields}})
    return seeded(lambda: type(model)(config))()


def _config_diff(a: Any, b: Any) -> dict[str, tuple[Any, Any]]:
    da, db = a.to_dict(), b.to_dict()
    diff = {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if k not in _IGNORED}
    return {k: v for k, v in diff.items() if v[0] != v[1] and not _same_float(*v)}


def _same_float(a: Any, b: Any) -> bool:  # metadata floats are float32: 1e-5 comes back as 9.99999975e-06
    return isinstance(a, float) and isinstance(b, float) and torch.tensor(a).item() == torch.tensor(b).item()


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("name", [t.name for t in TINY])
def test_gguf_round_trip_gives_identical_logits(name: str, tiny: TinyModels, tmp_path: Path) -> None:
    source = tiny.hf(name)
    model_type = source.config.model_type
    if not gguf_readable(model_type):
        pytest.skip(f"transformers' GGUF loader reads no {model_type!r} files")
    limit = GGUF_LIMITS.get(model_type)
    if limit is not None and not limit.loads(source.config):
        # the writer refuses what llama.cpp has no GGUF form for; load_model refuses the rest (LoadError)
        with pytest.raises((GGUFWriteError, LoadError, AssertionError)):
            hooked = load_model(write_gguf(source, tmp_path / "tiny.gguf"))
            assert torch.equal(hooked(_ids()), _logits(source, _ids())), "the round trip is exact"
        pytest.skip(f"{model_type} GGUF {limit.reason}")
    if limit is not None:
        source = _with_defaults(source, limit.reset)

    model = load_model(write_gguf(source, tmp_path / "tiny.gguf"))

    assert model.cfg.family == adapter_for(model_type).family
    assert not hasattr(model.hf_model.config, "quantization_config")
    lost = _config_diff(source.config, model.hf_model.config)
    ids = _ids()
    got, want = model(ids), _logits(source, ids)
    tol = _INEXACT.get(model_type)
    if tol is None:
        assert torch.equal(got, want), f"logits differ by {(got - want).abs().max():.3g}; config lost: {lost}"
    else:
        torch.testing.assert_close(got, want, rtol=0, atol=tol, msg=lambda m: f"{m}; config lost: {lost}")


@pytest.mark.parametrize("model_type", sorted(t for t, limit in GGUF_LIMITS.items() if limit.reset))
def test_gguf_limits_are_real(model_type: str, tiny: TinyModels, tmp_path: Path) -> None:
    """Each field GGUF_LIMITS says the loader drops comes back at its default from a file of the recipe."""
    recipes = [t.name for t in TINY if tiny.hf(t.name).config.model_type == model_type]
    assert recipes, f"GGUF_LIMITS names {model_type!r}, but no tiny recipe in TINY has that model type"
    limit = GGUF_LIMITS[model_type]
    source = next(m for m in map(tiny.hf, recipes) if limit.loads(m.config))
    path = write_gguf(source, tmp_path / "tiny.gguf")
    loaded = tf.AutoConfig.from_pretrained(str(tmp_path), gguf_file=str(path))
    defaults = _defaults(source.config)
    for field in limit.reset:
        assert getattr(source.config, field) != getattr(defaults, field), f"the recipe keeps {field}'s default"
        assert getattr(loaded, field) == getattr(defaults, field), f"{field} is read from the file now"


def test_every_gguf_family_with_an_adapter_has_a_tiny_recipe(tiny: TinyModels) -> None:
    covered = {tiny.hf(t.name).config.model_type for t in TINY}
    readable = {t for a in all_adapters() for t in a.model_types if gguf_readable(t)}
    # llama.cpp writes Mistral as "llama" (it loads as Llama), and transformers loads a Gemma 3 GGUF as the text
    # model, gemma3_text: neither has a GGUF of its own to test
    assert readable - covered <= {"mistral", "gemma3"}, (
        f"GGUF-readable families without a tiny recipe: {readable - covered}"
    )


def _no_adapter_model() -> Any:
    """A tiny StarCoder 2: transformers reads its GGUF files, circuitscope has no adapter for it."""
    if any("starcoder2" in a.model_types for a in all_adapters()):
        pytest.skip("starcoder2 has an adapter now: pick another GGUF architecture without one")
    config = tf.Starcoder2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4
    )
    return seeded(lambda: tf.Starcoder2ForCausalLM(config))()


def _forbid_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_weights(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the weights were loaded before the family was checked")

    monkeypatch.setattr(tf.AutoModelForCausalLM, "from_pretrained", no_weights)


def test_gguf_of_a_family_without_adapter_is_refused_before_its_weights_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(_no_adapter_model(), tmp_path / "tiny.gguf")
    _forbid_weights(monkeypatch)
    with pytest.raises(UnsupportedModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "'starcoder2'" in message and "docs/adapters.md" in message
    assert "llama (llama, mistral, qwen2, qwen3)" in message  # the families, each with its model types


def test_gguf_of_an_architecture_transformers_does_not_read_says_so(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "neox.gguf"
    writer = gguf.GGUFWriter(str(path), "gptneox")  # llama.cpp writes GPT-NeoX; transformers' loader does not read it
    writer.add_name("tiny-neox")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((VOCAB, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with pytest.raises(LoadError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "gptneox" in message
    assert "does not read that architecture" in message and "docs/models.md" in message


def test_a_folder_of_a_family_without_adapter_is_refused_before_its_weights_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_adapter_model().save_pretrained(tmp_path)
    _forbid_weights(monkeypatch)
    with pytest.raises(UnsupportedModelError, match=r"'starcoder2'.*docs/adapters\.md"):
        load_model(tmp_path)


def test_gguf_missing_a_tensor_is_refused_not_left_random(tiny: TinyModels, tmp_path: Path) -> None:
    path = write_gguf(tiny.hf("llama_gqa"), tmp_path / "tiny.gguf", omit=("blk.1.ffn_down.weight",))
    # transformers itself loads such a file, with that weight at random values
    plain = tf.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=str(path))
    assert isinstance(plain, tf.LlamaForCausalLM)

    with pytest.raises(LoadError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "model.layers.1.mlp.down_proj.weight" in message
    assert "found no tensor for 1 " in message


def test_gguf_whose_config_transformers_cannot_read_says_so(tiny: TinyModels, tmp_path: Path) -> None:
    """GPT-2's n_positions is not read (GGUF_LIMITS): the tiny GPT-2's 64 positions do not fit the default 1024."""
    source = tiny.hf("gpt2")
    assert source.config.n_positions == 64
    path = write_gguf(source, tmp_path / "tiny.gguf")
    with pytest.raises(LoadError, match="do not fit the configuration transformers' GGUF loader reads"):
        load_model(path)


def test_gguf_with_tensors_transformers_skips_is_refused(tiny: TinyModels, tmp_path: Path) -> None:
    """StableLM with qk_layernorm: transformers reads the file as a model without the q/k norms, silently."""
    source = tiny.hf("stablelm_parallel")
    assert source.config.qk_layernorm
    path = write_gguf(source, tmp_path / "tiny.gguf")
    plain = tf.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=str(path))
    assert plain.config.qk_layernorm is False  # transformers alone: loads, without the norms

    with pytest.raises(LoadError, match="weights more than the stablelm model"):
        load_model(path)
