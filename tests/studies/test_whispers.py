"""The whispers study: a decoder of the embeddings recovers the input far above the floors, the halves read
exactly their stated dimensions, temperature 0 samples the argmax, resuming is bit-exact, and the report opens."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from circuitscope.cli.main import app
from circuitscope.sae.corpus import Corpus
from circuitscope.studies import StudyConfigError
from circuitscope.studies.whispers import whispers_study
from circuitscope.studies.whispers_config import Readout, WhispersConfig
from circuitscope.studies.whispers_decoder import sample_guesses
from circuitscope.studies.whispers_training import prepare, read_readouts
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels

LETTERS = "abcdefgh"


def _corpus(n_docs: int = 6, seed: int = 0) -> Corpus:
    """Documents of letters drawn uniformly from 8: no position or context says which comes next."""
    rng = random.Random(seed)
    return Corpus("letters", ["".join(rng.choice(LETTERS) for _ in range(400)) for _ in range(n_docs)])


def _config(**overrides: object) -> WhispersConfig:
    small = dict(
        readouts=("0:full", "1:low"), context_size=16, batch_contexts=8, steps=120, lr=3e-3, d_decoder=32,
        decoder_layers=1, decoder_heads=2, vocab_size=16, test_documents=2, test_contexts=24, examples=2,
        n_samples=10, n_boot=200, checkpoint_every=0,
    )  # fmt: skip
    return WhispersConfig(**{**small, **overrides})  # type: ignore[arg-type]


def test_a_decoder_of_the_embeddings_recovers_the_input_far_above_the_floors(tiny: TinyModels) -> None:
    model = tiny.text()
    cfg = _config()
    result = whispers_study(model, cfg, _corpus(), on_progress=lambda *_: None)
    full = result.scores[0]
    assert full.readout == Readout(0, "full") and full.n_dims == model.cfg.d_model
    assert full.accuracy.mean > 0.9 and full.accuracy.low > result.unigram.high + 0.5
    assert result.coverage == 1.0 and len(full.by_position) == cfg.context_size - 1
    # the floor by hand: the most frequent training letter, scored on the held-out letters
    data = prepare(model, cfg, _corpus())
    train, test = data.train.tokens[:, 1:], data.test.tokens[:, 1:]
    most = int(torch.bincount(train.reshape(-1)).argmax())
    assert result.unigram.mean == pytest.approx(float((test == most).float().mean()), abs=1e-6)
    assert result.n_test_documents == 2 and result.n_train_documents == 4
    example = result.examples[0]
    assert len(example.guesses) == 2 and all(len(g) == 10 for g in example.guesses)
    assert example.original == model.tok.to_str_tokens(data.test.tokens[0, 1:])
    json.dumps(result.to_json())


def test_the_readouts_read_exactly_their_stated_dimensions(tiny: TinyModels) -> None:
    d = 8
    assert Readout(3, "low").dims(d, 0).tolist() == [0, 1, 2, 3]
    assert Readout(3, "high").dims(d, 0).tolist() == [4, 5, 6, 7]
    assert Readout(3, "full").dims(d, 0).tolist() == list(range(8))
    rand = Readout(3, "random").dims(d, 5)
    assert rand.tolist() == sorted(torch.randperm(d, generator=torch.Generator().manual_seed(5))[:4].tolist())
    assert Readout.parse("3:random") == Readout(3, "random") and Readout(3, "low").hook == "blocks.3.hook_resid_pre"
    model = tiny.text()
    tokens = model.to_tokens("abc defg hij")
    readouts = [Readout(1, "low"), Readout(1, "high")]
    dims = [r.dims(model.cfg.d_model, 0) for r in readouts]
    low, high = read_readouts(model, tokens, readouts, dims, skip=1)
    _, cache = model.run_with_cache(tokens, names="blocks.1.hook_resid_pre")
    whole = cache["blocks.1.hook_resid_pre"][:, 1:]
    half = model.cfg.d_model // 2
    assert torch.equal(low, whole[..., :half]) and torch.equal(high, whole[..., half:])


def test_sampling_at_temperature_zero_is_the_argmax_and_above_it_follows_the_softmax() -> None:
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    drawn = sample_guesses(logits, 10, 0.0, torch.Generator().manual_seed(1))
    assert drawn.shape == (10, 5) and torch.equal(drawn, logits.argmax(-1).expand(10, -1))
    two = torch.tensor([[0.0, 1.0]])  # p(1) = e / (1 + e) = 0.731 at temperature 1, 0.881 at 0.5
    many = sample_guesses(two, 20_000, 1.0, torch.Generator().manual_seed(2))
    assert float(many.float().mean()) == pytest.approx(0.7311, abs=0.01)
    sharper = sample_guesses(two, 20_000, 0.5, torch.Generator().manual_seed(2))
    assert float(sharper.float().mean()) == pytest.approx(0.8808, abs=0.01)


def test_an_interrupted_run_resumes_bit_for_bit(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.text()
    cfg = _config(steps=8, checkpoint_every=2)
    quiet = lambda *_: None  # noqa: E731
    whole = whispers_study(model, cfg, _corpus(), tmp_path / "whole", on_progress=quiet)
    whispers_study(model, cfg, _corpus(), tmp_path / "cut", stop_after_steps=5, on_progress=quiet)
    resumed = whispers_study(model, cfg, _corpus(), tmp_path / "cut", on_progress=quiet)
    assert resumed.steps == whole.steps == 8
    a, b = whole.decoders.state_dict(), resumed.decoders.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.scores[0].accuracy == whole.scores[0].accuracy
    with pytest.raises(StudyConfigError, match="other settings"):
        whispers_study(model, _config(steps=9, checkpoint_every=2), _corpus(), tmp_path / "cut", on_progress=quiet)


def test_the_thread_count_is_the_configs_or_measured_and_a_run_resumes_under_another(
    tiny: TinyModels, tmp_path: Path
) -> None:
    model, quiet, previous = tiny.text(), (lambda *_: None), torch.get_num_threads()
    cut = whispers_study(model, _config(steps=6, threads=1), _corpus(), tmp_path, stop_after_steps=3, on_progress=quiet)
    assert cut.threads == 1 and cut.steps == 3 and torch.get_num_threads() == previous
    resumed = whispers_study(model, _config(steps=6), _corpus(), tmp_path, on_progress=quiet)  # measured: 1 or 2
    assert resumed.steps == 6 and resumed.threads in {1, min(2, previous)} and torch.get_num_threads() == previous
    assert resumed.to_json()["threads"] == resumed.threads
    with pytest.raises(StudyConfigError, match="threads"):
        _config(threads=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"readouts": ("7:low",)}, r"layers \[7\] do not exist"),
        ({"readouts": ("3-low",)}, "is not LAYER:HALF"),
        ({"readouts": ("0:low", "0:low")}, "each LAYER:HALF once"),
        ({"test_documents": 6}, "leaves none to train on"),
        ({"decoder_heads": 3}, "does not divide"),
    ],
)
def test_configurations_that_cannot_run_are_refused(tiny: TinyModels, overrides: dict, message: str) -> None:
    with pytest.raises(StudyConfigError, match=message):
        whispers_study(tiny.text(), _config(**overrides), _corpus())


@pytest.mark.slow  # a command and a browser launch
def test_the_command_writes_a_report_and_prints_json(tiny: TinyModels, tmp_path: Path) -> None:
    texts = tmp_path / "texts"
    texts.mkdir()
    for i, doc in enumerate(_corpus().documents):
        (texts / f"{i}.txt").write_text(doc, encoding="utf-8")
    out = tmp_path / "run"
    args = ["--readout", "0:full", "--readout", "1:random", "--steps", "20", "--context-size", "16"]
    args += ["--d-decoder", "32", "--decoder-layers", "1", "--vocab-size", "16", "--test-documents", "2"]
    args += ["--test-contexts", "8", "--examples", "1", "--n-boot", "100", "--corpus", str(texts)]
    result = CliRunner().invoke(
        app, ["study", "whispers", "--model", str(tiny.text_folder()), *args, "--out-dir", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["study"] == "whispers" and payload["report"] == str(out / "report.html")
    assert [s["readout"] for s in payload["scores"]] == ["L0 full", "L1 random"] and payload["steps"] == 20
    assert (out / "checkpoints" / "step_00000020" / "state.safetensors").is_file()
    page = open_in_chromium(out / "report.html")
    assert page.console_errors == [] and "plotly-graph-div" in page.dom and "sampled guesses" in page.dom
