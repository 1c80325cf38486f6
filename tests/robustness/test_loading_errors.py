"""Bad input at load time: damaged model folders and cache entries, damaged tokenizers, names that cannot load.

Every case gets a LoadError that names the file (or the name) and says what to do, and the
offline cases are refused at once instead of after transformers' half-minute of hub retries.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx2
import huggingface_hub.constants as hub_constants
import pytest
import torch

from circuitscope import LoadError, load_model
from circuitscope.core import loading
from circuitscope.core.loading import DEFAULT_MODEL
from tests.gguf_writer import write_llama_gguf
from tests.tiny_models import TinyModels, reference_output

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once
FAST = 10.0  # seconds; transformers' retries take ~30 s without network


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage(folder: Path, file: str) -> None:
    if file == "config.json":
        (folder / file).write_text("this is not JSON {")
    else:
        _truncate(folder / file)


DAMAGES = ["model.safetensors", "tokenizer.json", "config.json"]


# ------------------------------------------------------------------------------ model folders
@pytest.mark.parametrize("file", DAMAGES)
def test_damaged_model_folder_names_the_file(tiny: TinyModels, tmp_path: Path, file: str) -> None:
    folder = Path(shutil.copytree(tiny.text_folder(), tmp_path / "model"))  # damaged below
    _damage(folder, file)

    with pytest.raises(LoadError) as info:
        load_model(folder)

    message = str(info.value)
    assert str(folder) in message
    assert file in message
    assert "truncated or corrupt" in message
    assert "again" in message  # what to do: fetch or save it again


def test_folder_without_tokenizer_files_loads_token_ids_only(tiny: TinyModels, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny.text_folder(), tmp_path / "model"))  # damaged below
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()

    model = load_model(folder)

    assert model.tokenizer is None
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert model(ids).shape == (1, 4, model.cfg.d_vocab)


def test_tokenizer_config_without_its_tokenizer_is_a_load_error(tiny: TinyModels, tmp_path: Path) -> None:
    """Half a tokenizer (tokenizer.json lost) is refused, not silently dropped."""
    folder = Path(shutil.copytree(tiny.text_folder(), tmp_path / "model"))  # damaged below
    (folder / "tokenizer.json").unlink()

    with pytest.raises(LoadError, match=r"could not load its tokenizer from tokenizer_config\.json") as info:
        load_model(folder)
    assert "delete the tokenizer files" in str(info.value)


# -------------------------------------------------------------------- the embedded default's cache
@pytest.fixture
def cached_default(tiny: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default's cache entry, converted from a tiny GGUF (with a tokenizer) instead of Gemma."""
    monkeypatch.setenv("CIRCUITSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CIRCUITSCOPE_NO_PROGRESS", "1")
    gguf = write_llama_gguf(tiny.hf("llama_gqa"), tmp_path / "tiny.gguf")
    target = loading.cache_home() / "models" / DEFAULT_MODEL
    loading._ensure_embedded(DEFAULT_MODEL, target, lambda path: Path(shutil.copyfile(gguf, path)))
    assert load_model(DEFAULT_MODEL).tokenizer is not None  # the entry is good before the test damages it
    return target


@pytest.mark.parametrize("file", DAMAGES)
def test_damaged_cache_entry_names_the_file_and_says_delete(cached_default: Path, file: str) -> None:
    _damage(cached_default, file)

    with pytest.raises(LoadError) as info:
        load_model(DEFAULT_MODEL)

    message = str(info.value)
    assert file in message
    assert f"Delete {str(cached_default)!r} and load again" in message


# ------------------------------------------------------------------------ names that cannot load
def _refused_fast(name: str) -> str:
    start = time.perf_counter()
    with pytest.raises(LoadError) as info:
        load_model(name)
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"refusing {name!r} took {elapsed:.1f} s"
    return str(info.value)


@pytest.mark.parametrize("offline", ["hub-unreachable", "HF_HUB_OFFLINE"])
def test_misspelt_name_offline_is_refused_at_once_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, offline: str
) -> None:
    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(hub_constants, "ENDPOINT", UNREACHABLE)

    message = _refused_fast("gemma-3-27m")

    assert "'gemma-3-27m' is not a local folder, a .gguf file or an embedded model" in message
    assert "(offline)" in message
    assert "Did you mean 'gemma-3-270m'?" in message
    assert ("unset HF_HUB_OFFLINE" if offline == "HF_HUB_OFFLINE" else UNREACHABLE) in message


def test_unknown_name_without_a_close_match_gets_no_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_constants, "ENDPOINT", UNREACHABLE)
    message = _refused_fast("some-org/no-such-model")
    assert "Did you mean" not in message
    assert repr(DEFAULT_MODEL) in message  # what can be loaded instead


def test_misspelt_name_is_refused_fast_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing patched: whatever this machine's network, a misspelt name fails fast and says what was meant."""
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    assert "Did you mean 'gemma-3-270m'?" in _refused_fast("gemma-3-27m")


def _fake_hub_cache(tiny: TinyModels, cache: Path, repo_id: str) -> torch.nn.Module:
    """A tiny model laid out the way huggingface_hub caches a download of ``repo_id``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    model = tiny.hf("llama_gqa")
    model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return model


def test_model_in_the_local_hub_cache_still_loads_offline(
    tiny: TinyModels, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "hub-cache"
    source = _fake_hub_cache(tiny, cache, "tiny-org/tiny-llama")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "ENDPOINT", UNREACHABLE)

    sent: list[str] = []  # every request huggingface_hub's HTTP client sends (it is httpx2 in hub 2.x)
    real_send = httpx2.HTTPTransport.handle_request
    monkeypatch.setattr(
        httpx2.HTTPTransport,
        "handle_request",
        lambda self, request: (sent.append(str(request.url)), real_send(self, request))[1],
    )
    model = load_model("tiny-org/tiny-llama")
    # straight from the cache: nothing goes anywhere but the one reachability probe to the (unreachable) endpoint,
    # so there is nothing to retry (a lookup that ignored the cache retried huggingface.co for ~20 s)
    assert sent and all(url.startswith(UNREACHABLE) for url in sent), sent

    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference_output(source, ids), atol=1e-5, rtol=0)
