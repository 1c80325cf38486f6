"""SAE folders in SAELens's format, both ways: ``cfg.json`` + ``sae_weights.safetensors``.

Written files carry SAELens 6's configuration (``d_in``, ``d_sae``, ``dtype``, ``device``,
``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations``, ``architecture``,
``metadata`` with ``model_name``, ``hook_name``, ``context_size``, ``prepend_bos``, ...), the
architecture's own fields (``k`` for TopK), and the older top-level keys SAELens 5 read, plus a
``circuitscope`` block (format version, our architecture name, training scale). Weights are
``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc``, ``b_dec`` and ``threshold`` for
JumpReLU. Architectures map as: ``relu`` <-> ``standard``, ``topk`` <-> ``topk``,
``jumprelu`` <-> ``jumprelu``, and ``batchtopk`` is saved as the ``jumprelu`` it is at inference.

Reading accepts folders written by SAELens 5 and 6 (``meta``/``metadata`` blocks or top-level
keys; ``activation_fn_str="topk"`` with ``activation_fn_kwargs.k``). Input scaling that SAELens
would apply at run time (``constant_norm_rescale``, ``layer_norm``) is refused with a clear error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from circuitscope.core.files import atomic_write, atomic_write_text
from circuitscope.errors import CircuitscopeError
from circuitscope.sae.base import ARCHITECTURES, SAE, SAEConfig, create_sae
from circuitscope.sae.errors import SAEFormatError

__all__ = ["CFG_FILENAME", "FORMAT_VERSION", "WEIGHTS_FILENAME", "load_sae", "save_sae"]

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
FORMAT_VERSION = 1


def _from_saelens() -> dict[str, str]:
    """SAELens architecture name -> ours, as the architecture classes declare it."""
    return {theirs: name for name, cls in ARCHITECTURES.items() for theirs in cls.reads_saelens}


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors`` file written to a temporary name, then renamed."""
    contiguous = {k: v.detach().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=metadata))


def saelens_config(sae: SAE, extra_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``cfg.json`` dictionary of ``sae`` in SAELens's format."""
    c = sae.cfg
    arch = type(sae).saelens_architecture
    layer = None
    parts = c.hook_name.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        layer = int(parts[1])
    metadata: dict[str, Any] = {
        "model_name": c.model_name or None,
        "hook_name": c.hook_name or None,
        "hook_layer": layer,
        "hook_head_index": None,
        "model_class_name": "HookedTransformer",
        "model_from_pretrained_kwargs": {},
        "prepend_bos": c.prepend_bos,
        "exclude_special_tokens": c.exclude_bos,
        "context_size": c.context_size,
        "dataset_path": c.dataset or None,
        "neuronpedia_id": None,
        "seqpos_slice": [None],
    }
    metadata.update(extra_metadata or {})
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": c.dtype,
        "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
        # SAELens 5 read these at the top level
        **{k: metadata[k] for k in ("model_name", "hook_name", "hook_layer", "hook_head_index", "context_size")},
        "prepend_bos": c.prepend_bos,
        "dataset_path": c.dataset or None,
        "activation_fn_str": "topk" if arch == "topk" else "relu",
        "activation_fn_kwargs": {"k": c.k} if arch == "topk" else {},
        "finetuning_scaling_factor": False,
        "circuitscope": {
            "format_version": FORMAT_VERSION,
            "architecture": c.architecture,
            "k": c.k,
            "activation_scale": c.activation_scale,
            "exclude_bos": c.exclude_bos,
        },
    }
    if arch == "topk":
        cfg["k"] = c.k
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def save_sae(sae: SAE, folder: str | os.PathLike[str], extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write ``sae`` to ``folder`` (created) as SAELens reads it; weights first, each file atomically."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {
        "W_enc": sae.W_enc.data,
        "W_dec": sae.W_dec.data,
        "b_enc": sae.b_enc.data,
        "b_dec": sae.b_dec.data,
    }
    threshold = getattr(sae, "threshold", None)
    if isinstance(threshold, torch.Tensor):
        tensors["threshold"] = (
            threshold.detach().expand(sae.cfg.d_sae).clone() if threshold.ndim == 0 else threshold.detach()
        )
    atomic_save_tensors(tensors, target / WEIGHTS_FILENAME, metadata={"format": "pt"})
    atomic_write_text(target / CFG_FILENAME, json.dumps(saelens_config(sae, extra_metadata), indent=2) + "\n")
    return target


def _config_from_saelens(raw: dict[str, Any], folder: Path) -> SAEConfig:
    meta: dict[str, Any] = {}
    for key in ("meta", "metadata"):
        if isinstance(raw.get(key), dict):
            meta.update(raw[key])
    get = lambda key, default=None: meta.get(key) if meta.get(key) is not None else raw.get(key, default)  # noqa: E731
    arch_raw = str(raw.get("architecture", "standard"))
    ours = raw.get("circuitscope", {}) if isinstance(raw.get("circuitscope"), dict) else {}
    act_fn = raw.get("activation_fn_str") or raw.get("activation_fn")
    k = raw.get("k")
    if arch_raw == "standard" and act_fn == "topk":
        arch_raw = "topk"
        k = (raw.get("activation_fn_kwargs") or {}).get("k", k)
    from_saelens = _from_saelens()
    if arch_raw not in from_saelens:
        raise SAEFormatError(
            f"{folder / CFG_FILENAME}: SAELens architecture {arch_raw!r} is not supported by circuitscope "
            f"(supported: {', '.join(sorted(from_saelens))})"
        )
    norm = raw.get("normalize_activations") or "none"
    if norm not in ("none", "expected_average_only_in"):
        raise SAEFormatError(
            f"{folder}: normalize_activations={norm!r} rescales inputs at run time, which circuitscope does not do; "
            "fold the normalisation into the weights first"
        )
    if (raw.get("reshape_activations") or "none") != "none":
        raise SAEFormatError(f"{folder}: reshape_activations={raw.get('reshape_activations')!r} is not supported")
    for key in ("d_in", "d_sae"):
        if not isinstance(raw.get(key), int):
            raise SAEFormatError(f"{folder / CFG_FILENAME} has no integer {key!r}; is it an SAE config?")
    dtype = str(raw.get("dtype", "float32")).replace("torch.", "")
    architecture = from_saelens[arch_raw]
    return SAEConfig(
        architecture=architecture,
        d_in=int(raw["d_in"]),
        d_sae=int(raw["d_sae"]),
        k=int(k) if ARCHITECTURES[architecture].uses_k and k is not None else None,
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        model_name=str(get("model_name") or ""),
        hook_name=str(get("hook_name") or ""),
        context_size=int(get("context_size") or 128),
        prepend_bos=bool(get("prepend_bos", True)),
        exclude_bos=bool(ours.get("exclude_bos", bool(get("exclude_special_tokens", False)))),
        dataset=str(get("dataset_path") or ""),
        activation_scale=float(ours.get("activation_scale", 1.0)),
        dtype=dtype if dtype in ("float32", "float64", "bfloat16", "float16") else "float32",
    )


def load_sae(folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> SAE:
    """Read an SAE folder written by circuitscope or SAELens."""
    path = Path(folder)
    cfg_path, weights_path = path / CFG_FILENAME, path / WEIGHTS_FILENAME
    if not path.is_dir():
        raise SAEFormatError(f"{path} is not a folder; an SAE is a folder with {CFG_FILENAME} and {WEIGHTS_FILENAME}")
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise SAEFormatError(f"{path} has no {p.name}; an SAE folder holds {CFG_FILENAME} and {WEIGHTS_FILENAME}")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SAEFormatError(f"{cfg_path} is not valid JSON ({err}); the file is damaged") from err
    if not isinstance(raw, dict):
        raise SAEFormatError(f"{cfg_path} must hold a JSON object")
    try:
        cfg = _config_from_saelens(raw, path)
    except CircuitscopeError:
        raise
    except (TypeError, ValueError) as err:  # a value of the wrong type, e.g. "context_size": "long"
        raise SAEFormatError(f"{cfg_path} has a value of the wrong type ({err}); the file is damaged") from err
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise SAEFormatError(f"{weights_path} is not a readable safetensors file ({err}); the file is damaged") from err
    sae = create_sae(cfg).to(device)
    expected = sae.saved_shapes()
    if "log_threshold" in tensors and "threshold" not in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").exp()
    for name, shape in expected.items():
        if name not in tensors:
            raise SAEFormatError(f"{weights_path} has no tensor {name!r} (has {', '.join(sorted(tensors))})")
        if tuple(tensors[name].shape) != shape:
            raise SAEFormatError(
                f"{weights_path}: {name} has shape {tuple(tensors[name].shape)}, but cfg.json implies {shape}"
            )
    for name in [*expected, "scaling_factor"]:
        if name in tensors and not bool(torch.isfinite(tensors[name]).all()):
            bad = int((~torch.isfinite(tensors[name])).sum())
            raise SAEFormatError(
                f"{weights_path}: tensor {name!r} has {bad} NaN or infinite entries; the SAE is damaged (or its "
                "training diverged): download it again or retrain it"
            )
    scaling = tensors.get("scaling_factor")
    if scaling is not None and not bool((scaling == 1).all()):
        with torch.no_grad():  # SAELens 5's finetuning scale multiplies the activations before decoding
            tensors["W_dec"] = tensors["W_dec"] * scaling[:, None]
    if raw.get("rescale_acts_by_decoder_norm"):
        # SAELens TopK scales pre-activations by ||W_dec[i]|| and divides them out again when
        # decoding; folding the norms into the weights gives the same SAE with plain TopK.
        norms = tensors["W_dec"].norm(dim=-1)
        tensors["W_enc"] = tensors["W_enc"] * norms
        tensors["b_enc"] = tensors["b_enc"] * norms
        tensors["W_dec"] = tensors["W_dec"] / norms[:, None]
    with torch.no_grad():
        for name in expected:
            getattr(sae, name).copy_(tensors[name])
    return sae
