"""Transcoders in the layouts other tools use: circuit-tracer's (both ways) and Gemma Scope's (read).

**circuit-tracer, per-layer** (``load_transcoder_set``): a YAML file with ``model_name``,
``feature_input_hook``, ``feature_output_hook`` and a list ``transcoders`` of ``{id, layer, filepath}``,
each file a safetensors with ``W_enc [d_sae, d_model]``, ``W_dec [d_model, d_sae]``, ``b_enc``,
``b_dec`` and ``W_skip [d_model, d_model]`` (applied as ``x @ W_skip.T``; zeros when there is no
skip), ReLU transcoders of every layer from 0 up.

**circuit-tracer, cross-layer** (``load_clt``): a folder of ``W_enc_{i}.safetensors`` (``W_enc_{i}
[d_sae, d_model]``, ``b_enc_{i}``, ``b_dec_{i}`` and, for JumpReLU, ``threshold_{i}``) and
``W_dec_{i}.safetensors`` (``W_dec_{i} [d_sae, n_layers - i, d_model]``), layers ``0..n-1``; the
hooks are arguments of ``load_clt``, so circuitscope writes them to a ``config.yaml`` beside.

**Gemma Scope** (``google/gemma-scope-2b-pt-transcoders``): one ``params.npz`` per layer with
``W_enc [d_model, d_sae]``, ``W_dec [d_sae, d_model]``, ``b_enc``, ``b_dec``, ``threshold``:
JumpReLU transcoders reading ``ln2.hook_normalized``. :func:`gemma_scope_transcoders` downloads
them by hub id (network needed); :func:`load_gemma_scope` reads files already on disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from circuitscope.core.files import atomic_write_text
from circuitscope.sae.io import atomic_save_tensors
from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderFormatError
from circuitscope.transcoders.modules import INPUT_SITES, OUTPUT_SITE, InputSite, TranscoderConfig, TranscoderSet

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "CIRCUIT_TRACER_CONFIG",
    "gemma_scope_transcoders",
    "load_circuit_tracer",
    "load_gemma_scope",
    "save_circuit_tracer",
]

CIRCUIT_TRACER_CONFIG = "config.yaml"
_OUTPUT_HOOKS = (OUTPUT_SITE, "mlp.hook_out")  # circuit-tracer's Llama configs name the MLP output mlp.hook_out


def _yaml_config(transcoders: TranscoderSet, files: list[tuple[int, Path]]) -> str:
    """circuit-tracer's transcoder-set YAML (written by hand: plain keys and quoted strings only)."""
    c = transcoders.cfg
    lines = [
        "# circuit-tracer transcoder set, written by circuitscope",
        f"model_name: {_quote(c.model_name)}",
        f"feature_input_hook: {_quote(c.input_site)}",
        f"feature_output_hook: {_quote(OUTPUT_SITE)}",
        "transcoders:" if files else "transcoders: []",
    ]
    for layer, path in files:
        ident = f"{c.model_name.split('/')[-1] or 'model'}-circuitscope-{layer}"
        lines += [f"  - id: {_quote(ident)}", f"    layer: {layer}", f"    filepath: {_quote(str(path))}"]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _refuse_unless(ok: bool, message: str) -> None:
    if not ok:
        raise TranscoderConfigError(message)


def save_circuit_tracer(transcoders: TranscoderSet, folder: str | os.PathLike[str]) -> Path:
    """Write ``transcoders`` as circuit-tracer loads them; returns the ``config.yaml`` written.

    Per-layer sets become the YAML and one safetensors per layer (``load_transcoder_set(yaml)``);
    cross-layer sets a CLT folder (``load_clt(folder, feature_input_hook=..., feature_output_hook=...)``).
    """
    c = transcoders.cfg
    _refuse_unless(
        c.layers == tuple(range(len(c.layers))),
        f"circuit-tracer needs a transcoder on every layer from 0 up, these cover {list(c.layers)}",
    )
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    files: list[tuple[int, Path]] = []
    with torch.no_grad():
        if c.kind == "per_layer":
            _refuse_unless(
                c.architecture == "relu",
                f"circuit-tracer reads per-layer ReLU transcoders from files, not {c.architecture}; save these "
                "with save_transcoders",
            )
            for layer in c.layers:
                skip = transcoders.skip(layer)
                tensors = {
                    "W_enc": transcoders.encoder(layer)[0].T,
                    "b_enc": transcoders.encoder(layer)[1],
                    "W_dec": transcoders.decoders(layer)[0][1].T,
                    "b_dec": transcoders.decoder_bias(layer),
                    "W_skip": skip.T if skip is not None else torch.zeros(c.d_out, c.d_in),
                }
                path = (target / f"layer_{layer}.safetensors").resolve()
                atomic_save_tensors(tensors, path, metadata={"format": "pt"})
                files.append((layer, path))
        else:
            _refuse_unless(
                c.architecture in ("relu", "jumprelu") and not c.skip,
                "circuit-tracer's CLT files hold ReLU or JumpReLU cross-layer transcoders without a skip connection; "
                "save these with save_transcoders",
            )
            for i, layer in enumerate(c.layers):
                W_enc, b_enc = transcoders.encoder(layer)
                enc = {f"W_enc_{i}": W_enc.T, f"b_enc_{i}": b_enc, f"b_dec_{i}": transcoders.decoder_bias(layer)}
                if transcoders.threshold is not None:
                    enc[f"threshold_{i}"] = transcoders.threshold[i]
                atomic_save_tensors(enc, target / f"W_enc_{i}.safetensors", metadata={"format": "pt"})
                dec = {f"W_dec_{i}": transcoders.W_dec[i].permute(1, 0, 2)}
                atomic_save_tensors(dec, target / f"W_dec_{i}.safetensors", metadata={"format": "pt"})
    config = target / CIRCUIT_TRACER_CONFIG
    atomic_write_text(config, _yaml_config(transcoders, files))
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # transformers' dependency; imported only to read a circuit-tracer config

    raw: Any
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raw = err
    if isinstance(raw, dict):
        return raw
    what = f"not a readable YAML file ({raw})" if isinstance(raw, Exception) else "not a YAML mapping"
    raise TranscoderFormatError(f"{path} is {what}; circuit-tracer's config maps model_name, feature_input_hook, ...")


def _input_site(hook: Any, where: Path) -> InputSite:
    if hook == "ln2.hook_normalized":
        return "ln2.hook_normalized"
    if hook == "hook_resid_mid":
        return "hook_resid_mid"
    raise TranscoderFormatError(
        f"{where}: feature_input_hook {hook!r} is not one circuitscope's transcoders read ({', '.join(INPUT_SITES)})"
    )


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise TranscoderFormatError(f"{path} is not a readable safetensors file ({err})") from err


def _need(tensors: Mapping[str, Any], names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise TranscoderFormatError(f"{where} has no tensor {', '.join(missing)} (has {', '.join(sorted(tensors))})")


def _set_from(cfg: TranscoderConfig, values: dict[str, torch.Tensor], where: Path) -> TranscoderSet:
    """A set of ``cfg`` holding ``values`` (its state-dict names), shapes checked."""
    tc = TranscoderSet(cfg)
    state = tc.state_dict()
    for name, value in values.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise TranscoderFormatError(
                f"{where}: {name} has shape {tuple(value.shape)}, expected {tuple(state[name].shape)} (layers of "
                "different widths cannot form one set)"
            )
    tc.load_state_dict(values)
    return tc


def _stack(parts: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(p.shape) for p in parts}
    if len(shapes) > 1:
        raise TranscoderFormatError(f"the layers' tensors have different shapes {sorted(shapes)}; give one width")
    return torch.stack([p.float() for p in parts])


def _finish(tc: TranscoderSet, model: HookedModel | None) -> TranscoderSet:
    if model is not None:
        tc.check(model)
    return tc


def _load_per_layer_yaml(path: Path, model: HookedModel | None) -> TranscoderSet:
    raw = _read_yaml(path)
    if raw.get("feature_output_hook") not in _OUTPUT_HOOKS:
        raise TranscoderFormatError(
            f"{path}: feature_output_hook {raw.get('feature_output_hook')!r} is not the MLP output"
        )
    entries = raw.get("transcoders")
    if not isinstance(entries, list) or not entries:
        raise TranscoderFormatError(f"{path} lists no transcoders (a list of {{id, layer, filepath}})")
    files: dict[int, Path] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("layer"), int) or "filepath" not in entry:
            raise TranscoderFormatError(f"{path}: each transcoder needs an integer layer and a filepath, got {entry!r}")
        files[entry["layer"]] = _local_file(str(entry["filepath"]), path)
    layers = tuple(sorted(files))
    per = [_tensors(files[layer]) for layer in layers]
    for layer, t in zip(layers, per, strict=True):
        _need(t, ("W_enc", "W_dec", "b_enc", "b_dec"), files[layer])
    jump = all("threshold" in t for t in per)
    skips = [t.get("W_skip") for t in per]
    skip = any(s is not None and bool(s.ne(0).any()) for s in skips)
    W_enc = _stack([t["W_enc"].T for t in per])
    d_in, d_out = int(W_enc.shape[1]), int(per[0]["b_dec"].shape[0])
    values = {
        "W_enc": W_enc,
        "b_enc": _stack([t["b_enc"] for t in per]),
        "b_dec": _stack([t["b_dec"] for t in per]),
        **{f"W_dec.{i}": t["W_dec"].T.float()[None] for i, t in enumerate(per)},
    }
    if jump:
        values["threshold"] = _stack([t["threshold"] for t in per])
    if skip:
        values["W_skip"] = _stack([s.T if s is not None else torch.zeros(d_in, d_out) for s in skips])
    cfg = TranscoderConfig(
        "per_layer",
        "jumprelu" if jump else "relu",
        d_in,
        int(W_enc.shape[2]),
        d_out,
        layers,
        input_site=_input_site(raw.get("feature_input_hook"), path),
        skip=skip,
        model_name=str(raw.get("model_name") or ""),
    )
    return _finish(_set_from(cfg, values, path), model)


def _local_file(filepath: str, config: Path) -> Path:
    if filepath.startswith("hf://"):
        raise TranscoderFormatError(
            f"{config} names a hub file ({filepath}); circuitscope reads local files here: download it first "
            "(huggingface_hub.hf_hub_download) and point filepath at it"
        )
    path = Path(filepath)
    if not path.is_absolute():
        path = config.parent / path
    if not path.is_file() and (config.parent / path.name).is_file():
        path = config.parent / path.name  # the folder was moved since it was written
    if not path.is_file():
        raise TranscoderFormatError(f"{config} names {filepath}, which does not exist")
    return path


def _load_clt(folder: Path, model: HookedModel | None) -> TranscoderSet:
    n = len(list(folder.glob("W_enc_*.safetensors")))
    raw = _read_yaml(folder / CIRCUIT_TRACER_CONFIG) if (folder / CIRCUIT_TRACER_CONFIG).is_file() else {}
    enc = [_tensors(folder / f"W_enc_{i}.safetensors") for i in range(n)]
    for i, t in enumerate(enc):
        _need(t, (f"W_enc_{i}", f"b_enc_{i}", f"b_dec_{i}"), folder / f"W_enc_{i}.safetensors")
    dec = [_tensors(folder / f"W_dec_{i}.safetensors") for i in range(n)]
    for i, t in enumerate(dec):
        _need(t, (f"W_dec_{i}",), folder / f"W_dec_{i}.safetensors")
    jump = all(f"threshold_{i}" in t for i, t in enumerate(enc))
    W_enc = _stack([t[f"W_enc_{i}"].T for i, t in enumerate(enc)])
    values = {
        "W_enc": W_enc,
        "b_enc": _stack([t[f"b_enc_{i}"] for i, t in enumerate(enc)]),
        "b_dec": _stack([t[f"b_dec_{i}"] for i, t in enumerate(enc)]),
        **{f"W_dec.{i}": t[f"W_dec_{i}"].permute(1, 0, 2).float() for i, t in enumerate(dec)},
    }
    if jump:
        values["threshold"] = _stack([t[f"threshold_{i}"].reshape(-1) for i, t in enumerate(enc)])
    cfg = TranscoderConfig(
        "cross_layer",
        "jumprelu" if jump else "relu",
        int(W_enc.shape[1]),
        int(W_enc.shape[2]),
        int(values["b_dec"].shape[1]),
        tuple(range(n)),
        input_site=_input_site(raw.get("feature_input_hook", "hook_resid_mid"), folder),
        model_name=str(raw.get("model_name") or ""),
    )
    return _finish(_set_from(cfg, values, folder), model)


def load_circuit_tracer(path: str | os.PathLike[str], model: HookedModel | None = None) -> TranscoderSet:
    """Read circuit-tracer's files: a per-layer set's YAML, or a CLT folder (``W_enc_0.safetensors``, ...).

    A folder written by :func:`save_circuit_tracer` can be given either way. The files record no
    model fingerprint: pass ``model`` to check the layers and widths against it.
    """
    p = Path(path)
    if p.is_dir() and (p / "W_enc_0.safetensors").is_file():
        return _load_clt(p, model)
    if p.is_dir():
        p = p / CIRCUIT_TRACER_CONFIG
    if not p.is_file():
        raise TranscoderFormatError(
            f"{path} is neither circuit-tracer's transcoder YAML nor a CLT folder (W_enc_0.safetensors, ...)"
        )
    return _load_per_layer_yaml(p, model)


def load_gemma_scope(
    files: Mapping[int, str | os.PathLike[str]], model: HookedModel | None = None, model_name: str = ""
) -> TranscoderSet:
    """Gemma Scope's per-layer JumpReLU transcoders from ``params.npz`` files on disk, one per layer."""
    if not files:
        raise TranscoderConfigError("give at least one layer's params.npz")
    layers = tuple(sorted(files))
    per: list[dict[str, torch.Tensor]] = []
    for layer in layers:
        path = Path(files[layer])
        try:
            with np.load(path) as npz:
                per.append({k: torch.from_numpy(np.asarray(npz[k], dtype=np.float32)) for k in npz.files})
        except (OSError, ValueError) as err:
            raise TranscoderFormatError(f"{path} is not a readable .npz file ({err})") from err
        _need(per[-1], ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"), path)
    W_enc = _stack([t["W_enc"] for t in per])
    values = {
        "W_enc": W_enc,
        "b_enc": _stack([t["b_enc"] for t in per]),
        "b_dec": _stack([t["b_dec"] for t in per]),
        "threshold": _stack([t["threshold"] for t in per]),
        **{f"W_dec.{i}": t["W_dec"][None] for i, t in enumerate(per)},
    }
    cfg = TranscoderConfig(
        "per_layer",
        "jumprelu",
        int(W_enc.shape[1]),
        int(W_enc.shape[2]),
        int(values["b_dec"].shape[1]),
        layers,
        input_site="ln2.hook_normalized",
        model_name=model_name,
    )
    return _finish(_set_from(cfg, values, Path(files[layers[0]]).parent), model)


def gemma_scope_transcoders(
    repo_id: str,
    paths: Mapping[int, str],
    model: HookedModel | None = None,
    revision: str | None = None,
) -> TranscoderSet:
    """Download Gemma Scope transcoders by hub id and read them (network needed; files are cached by the hub).

    ``paths`` maps each layer to its file in the repository, e.g.
    ``{0: "layer_0/width_16k/average_l0_76/params.npz"}`` of ``google/gemma-scope-2b-pt-transcoders``.
    """
    from huggingface_hub import hf_hub_download

    files = {layer: hf_hub_download(repo_id=repo_id, filename=name, revision=revision) for layer, name in paths.items()}
    return load_gemma_scope(files, model, model_name=repo_id)
