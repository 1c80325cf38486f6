"""Damaged files and artifacts for another model: each is refused with an error naming the file, or skipped for
the newest intact copy with a warning that names both; nothing the user computed is discarded.

Covers the toy-lab checkpoints (``model.safetensors``, ``optimizer.safetensors``, ``state.json``, ``run.json``),
the SAE trainer's checkpoints (``trainer.json``, ``state.safetensors``), steering-vector files, activation-store
manifests, SAE weights and circuit files with their model fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from circuitscope import HookedModel
from circuitscope import sae as S  # noqa: N812
from circuitscope.circuits import Circuit, CircuitError, discover_circuit
from circuitscope.circuits.circuit import VERSION, UnfingerprintedCircuitWarning
from circuitscope.errors import DamagedCheckpointWarning, LoadError
from circuitscope.steering import SteeringVector, load_vector, model_fingerprint, save_vector
from circuitscope.tasks import Task
from circuitscope.toy.checkpoint import DamagedCheckpointError, checkpoint_steps_on_disk, load_model_weights
from circuitscope.toy.grokking_lab import GrokkingConfig, run_grokking
from tests.robustness.checkpoint_runs import (
    assert_same_sae,
    assert_same_weights,
    sae_store,
    sae_train,
    snapshot,
    toy_train,
    truncate,
)
from tests.tiny_models import VOCAB, TinyModels

CHECKPOINT_FILES = ["model.safetensors", "optimizer.safetensors", "state.json"]


def _toy_step(folder: Path, step: int) -> Path:
    return folder / "checkpoints" / f"step_{step:07d}"


# ------------------------------------------------------------------------------ toy-lab checkpoints
@pytest.mark.parametrize("file", CHECKPOINT_FILES)
def test_a_truncated_toy_checkpoint_file_falls_back_to_the_newest_intact_one(tmp_path: Path, file: str) -> None:
    reference, expected = toy_train(30)
    toy_train(20, tmp_path)
    damaged = _toy_step(tmp_path, 20) / file
    truncate(damaged)

    with pytest.warns(DamagedCheckpointWarning) as caught:
        model, resumed = toy_train(30, tmp_path)

    message = str(caught[0].message)
    assert str(damaged) in message and "step 15" in message
    assert resumed.resumed_from == 15
    assert resumed.loss == expected.loss and resumed.metrics == expected.metrics
    assert_same_weights(reference, model)
    assert_same_weights(reference, toy_train(30, tmp_path)[0])  # the rewritten step-20 checkpoint is intact again


def test_when_every_resumable_toy_checkpoint_is_damaged_the_run_is_refused_and_kept(tmp_path: Path) -> None:
    toy_train(20, tmp_path)
    truncate(_toy_step(tmp_path, 20) / "optimizer.safetensors")
    (_toy_step(tmp_path, 15) / "state.json").write_text('{"version": 1, "st')
    before = snapshot(tmp_path)

    with pytest.raises(DamagedCheckpointError) as info:
        toy_train(30, tmp_path)

    message = str(info.value)
    assert str(_toy_step(tmp_path, 20) / "optimizer.safetensors") in message
    assert str(_toy_step(tmp_path, 15) / "state.json") in message
    assert f"delete (or move away) {tmp_path}" in message
    assert snapshot(tmp_path) == before


def test_a_truncated_run_json_is_refused_naming_it(tmp_path: Path) -> None:
    toy_train(10, tmp_path)
    truncate(tmp_path / "run.json")
    before = snapshot(tmp_path)

    with pytest.raises(DamagedCheckpointError, match=r"run\.json is damaged") as info:
        toy_train(20, tmp_path)

    assert str(tmp_path / "run.json") in str(info.value) and "to start over" in str(info.value)
    assert snapshot(tmp_path) == before


def test_stray_folders_in_checkpoints_are_ignored(tmp_path: Path) -> None:
    reference, _ = toy_train(20)
    toy_train(10, tmp_path)
    root = tmp_path / "checkpoints"
    for stray in ("notes", "step_abc", "step_0000010.partial", "step_99"):
        (root / stray).mkdir()
        (root / stray / "state.json").write_text("{}")
        (root / stray / "optimizer.safetensors").write_bytes(b"junk")
    (root / "step_9999999").write_text("a file, not a checkpoint")

    assert checkpoint_steps_on_disk(tmp_path) == [0, 5, 10]
    model, resumed = toy_train(20, tmp_path)
    assert resumed.resumed_from == 10
    assert_same_weights(reference, model)


def test_a_damaged_weights_file_is_named_when_reading_a_checkpoint(tmp_path: Path) -> None:
    toy_train(10, tmp_path)
    truncate(_toy_step(tmp_path, 5) / "model.safetensors")
    with pytest.raises(DamagedCheckpointError, match=r"step_0000005/model\.safetensors is damaged"):
        load_model_weights(tmp_path, 5)


def test_the_grokking_lab_resumes_past_a_damaged_checkpoint(tmp_path: Path) -> None:
    config = GrokkingConfig(p=7, d_model=8, n_heads=2, d_head=4, d_mlp=16, steps=20, checkpoint_every=5)
    first = run_grokking(config, tmp_path, threads=1)
    truncate(_toy_step(tmp_path, 20) / "model.safetensors")

    with pytest.warns(DamagedCheckpointWarning, match="step 15"):
        again = run_grokking(config, tmp_path, threads=1)

    assert again.steps == first.steps == [0, 5, 10, 15, 20]
    assert again.test_loss == first.test_loss and again.restricted_loss == first.restricted_loss


# ------------------------------------------------------------------------------ SAE trainer checkpoints
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> S.ActivationStore:
    return sae_store(tmp_path_factory.mktemp("acts"))


def _sae_step(folder: Path, step: int) -> Path:
    return folder / "checkpoints" / f"step_{step:08d}"


@pytest.mark.parametrize("file", ["trainer.json", "state.safetensors"])
def test_a_truncated_sae_checkpoint_file_falls_back_to_the_newest_intact_one(
    store: S.ActivationStore, tmp_path: Path, file: str
) -> None:
    full = sae_train(store, None)
    sae_train(store, tmp_path, stop_after_steps=12)
    damaged = _sae_step(tmp_path, 12) / file
    truncate(damaged)

    with pytest.warns(DamagedCheckpointWarning) as caught:
        resumed = sae_train(store, tmp_path)

    message = str(caught[0].message)
    assert str(damaged) in message and str(_sae_step(tmp_path, 10)) in message
    assert_same_sae(full, resumed)


def test_when_every_sae_checkpoint_is_damaged_the_run_is_refused_and_kept(
    store: S.ActivationStore, tmp_path: Path
) -> None:
    sae_train(store, tmp_path, stop_after_steps=7)
    truncate(_sae_step(tmp_path, 7) / "trainer.json")
    truncate(_sae_step(tmp_path, 5) / "state.safetensors")
    before = snapshot(tmp_path)

    with pytest.raises(S.SAEFormatError) as info:
        sae_train(store, tmp_path)

    message = str(info.value)
    assert str(_sae_step(tmp_path, 7) / "trainer.json") in message
    assert str(_sae_step(tmp_path, 5) / "state.safetensors") in message
    assert "--no-resume" in message
    assert snapshot(tmp_path) == before


def test_stray_folders_in_sae_checkpoints_are_ignored(store: S.ActivationStore, tmp_path: Path) -> None:
    full = sae_train(store, None)
    sae_train(store, tmp_path, stop_after_steps=10)
    for stray in ("notes", "step_abc", "step_00000020.partial"):
        (tmp_path / "checkpoints" / stray).mkdir()
        (tmp_path / "checkpoints" / stray / "trainer.json").write_text("{")
    assert_same_sae(full, sae_train(store, tmp_path))


# ------------------------------------------------------------------------------ steering-vector files
def _saved_vector(tmp_path: Path) -> Path:
    vector = SteeringVector(torch.linspace(-1, 1, 8), "blocks.0.hook_resid_pre", coefficient=2.0, start_pos=1)
    return save_vector(vector, tmp_path / "v.safetensors")


def _rewrite(path: Path, meta: object = None, vector: torch.Tensor | None = None, **header: str) -> None:
    with safe_open(str(path), framework="pt") as handle:
        old = handle.metadata() or {}
        tensor = handle.get_tensor("vector")
    if meta is not None:
        old["metadata"] = meta if isinstance(meta, str) else json.dumps(meta)
    save_file({"vector": tensor if vector is None else vector}, str(path), metadata={**old, **header})


def _meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {})["metadata"])


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("truncated file", "not a readable safetensors"),
        ("truncated metadata", "not valid JSON"),
        ("metadata is a list", "not a JSON object"),
        ("missing mode", "missing or mistyped mode"),
        ("d is a string", "missing or mistyped d"),
        ("coefficient is null", "missing or mistyped coefficient"),
        ("unknown mode", "mode must be"),
        ("NaN entries", "NaN"),
        ("format_version not a number", "format_version"),
    ],
)
def test_a_damaged_steering_vector_file_is_named(tmp_path: Path, damage: str, expected: str) -> None:
    path = _saved_vector(tmp_path)
    meta = _meta(path)
    if damage == "truncated file":
        truncate(path)
    elif damage == "truncated metadata":
        _rewrite(path, json.dumps(meta)[:20])
    elif damage == "metadata is a list":
        _rewrite(path, [meta])
    elif damage == "missing mode":
        _rewrite(path, {k: v for k, v in meta.items() if k != "mode"})
    elif damage == "d is a string":
        _rewrite(path, {**meta, "d": "eight"})
    elif damage == "coefficient is null":
        _rewrite(path, {**meta, "coefficient": None})
    elif damage == "unknown mode":
        _rewrite(path, {**meta, "mode": "multiply"})
    elif damage == "NaN entries":
        _rewrite(path, vector=torch.tensor([0.0, float("nan"), *[1.0] * 6]))
    else:
        _rewrite(path, format_version="one")

    with pytest.raises(LoadError, match=expected) as info:
        load_vector(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------ activation-store manifests
@pytest.mark.parametrize(
    ("damage", "named"),
    [("no d_in", "d_in"), ("no hook", "hook"), ("no model", "model"), ("no shards", "shards"),
     ("shard without n_tokens", "shards[0].n_tokens"), ("n_tokens a string", "shards[1].n_tokens")],
)  # fmt: skip
def test_an_activation_manifest_missing_keys_is_named(tmp_path: Path, damage: str, named: str) -> None:
    S.write_store(torch.randn(64, 4), tmp_path, tokens_per_shard=32)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    if damage.startswith("no "):
        del manifest[damage.removeprefix("no ")]
    elif damage == "shard without n_tokens":
        del manifest["shards"][0]["n_tokens"]
    else:
        manifest["shards"][1]["n_tokens"] = "32"
    path.write_text(json.dumps(manifest))

    with pytest.raises(S.ActivationStoreError, match="is damaged") as info:
        S.ActivationStore(tmp_path)
    assert str(path) in str(info.value) and named in str(info.value)


# ------------------------------------------------------------------------------ SAE weights
def _saved_sae(tmp_path: Path) -> Path:
    sae = S.create_sae(S.SAEConfig(architecture="jumprelu", d_in=8, d_sae=16, hook_name="blocks.0.hook_resid_post"))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.rand(p.shape, generator=torch.Generator().manual_seed(0)))
    return S.save_sae(sae, tmp_path / "sae")


@pytest.mark.parametrize(("tensor", "value"), [("W_enc", float("nan")), ("b_dec", float("inf")),
                                               ("threshold", float("-inf"))])  # fmt: skip
def test_an_sae_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path: Path, tensor: str, value: float) -> None:
    folder = _saved_sae(tmp_path)
    weights = folder / "sae_weights.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    tensors[tensor].view(-1)[3] = value
    save_file(tensors, str(weights))

    with pytest.raises(S.SAEFormatError, match=f"tensor '{tensor}' has 1 NaN or infinite") as info:
        S.load_sae(folder)
    assert str(weights) in str(info.value)


def test_a_truncated_sae_weights_file_is_named(tmp_path: Path) -> None:
    folder = _saved_sae(tmp_path)
    truncate(folder / "sae_weights.safetensors")
    with pytest.raises(S.SAEFormatError, match="damaged") as info:
        S.load_sae(folder)
    assert str(folder / "sae_weights.safetensors") in str(info.value)


def test_an_sae_config_value_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    folder = _saved_sae(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "context_size": "long", "metadata": {}}))
    with pytest.raises(S.SAEFormatError, match="wrong type") as info:
        S.load_sae(folder)
    assert str(folder / "cfg.json") in str(info.value)


# ------------------------------------------------------------------------------ circuits and the model fingerprint
def _task() -> Task:
    g = torch.Generator().manual_seed(2)
    clean = torch.randint(1, VOCAB, (4, 6), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1] = torch.randint(1, VOCAB, (4,), generator=g)
    return Task("tiny", ["c"] * 4, ["x"] * 4, clean, corrupted, torch.full((4,), 5), torch.tensor([1, 2, 3, 4]),
                torch.tensor([5, 6, 7, 8]))  # fmt: skip


@pytest.fixture(scope="module")
def found(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> tuple[HookedModel, Path]:
    model = tiny.hooked("llama_gqa")
    circuit = discover_circuit(model, _task(), "eap", n_edges=6, curve=False, model_name="tiny-llama").circuit
    return model, circuit.save(tmp_path_factory.mktemp("circuit") / "c.json")


def _same_shape_other_weights(tiny: TinyModels) -> HookedModel:
    hf = tiny.hf("llama_gqa")
    embedding = hf.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding)
    with torch.no_grad():
        embedding.weight.mul_(1.5)
    return HookedModel(hf)


def test_a_circuit_file_records_the_model_fingerprint(found: tuple[HookedModel, Path]) -> None:
    model, path = found
    data = json.loads(path.read_text())
    assert data["version"] == VERSION == 2
    assert data["model"]["fingerprint"] == model_fingerprint(model)
    assert Circuit.load(path, model=model).fingerprint == model_fingerprint(model)


@pytest.mark.parametrize("other", ["same shape, other weights", "another family"])
def test_a_circuit_is_refused_for_another_model_with_both_descriptions(
    tiny: TinyModels, found: tuple[HookedModel, Path], other: str
) -> None:
    model, path = found
    given = _same_shape_other_weights(tiny) if other.startswith("same") else tiny.hooked("gpt2")
    with pytest.raises(CircuitError, match="this circuit is for 'tiny-llama'") as info:
        Circuit.load(path, model=given)
    message = str(info.value)
    assert model_fingerprint(model) in message and model_fingerprint(given) in message


def _as_version_1(path: Path, out: Path) -> Path:
    data = json.loads(path.read_text())
    del data["model"]["fingerprint"]
    out.write_text(json.dumps({**data, "version": 1}))
    return out


@pytest.fixture
def old(found: tuple[HookedModel, Path], tmp_path: Path) -> Path:
    """The found circuit's file as version 1 wrote it (no fingerprint)."""
    return _as_version_1(found[1], tmp_path / "old.json")


def test_an_old_circuit_file_loads_for_a_model_of_its_shape_with_a_warning(
    tiny: TinyModels, found: tuple[HookedModel, Path], old: Path
) -> None:
    model, path = found
    with pytest.warns(UnfingerprintedCircuitWarning, match="only its layers and heads were checked"):
        loaded = Circuit.load(old, model=_same_shape_other_weights(tiny))
    assert loaded.fingerprint == "" and torch.equal(loaded.edges, Circuit.load(path, model=model).edges)


def test_an_old_circuit_file_is_still_refused_for_another_shape(tiny: TinyModels, old: Path) -> None:
    with pytest.raises(CircuitError, match="this circuit is for 'tiny-llama'"):
        Circuit.load(old, model=tiny.hooked("gpt2"))
