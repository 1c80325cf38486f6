"""OPT: learned positions (offset by 2), LayerNorm, separate q/k/v, a ReLU MLP run on flattened positions.

Pre-norm blocks (``do_layer_norm_before=True``, every OPT but 350m): ``x + attn(ln1 x)``, then
``+ fc2(act(fc1(ln2 .)))``. ``hook_pos_embed`` is [batch pos d_model] (OPT's positions follow the attention
mask). OPT-350m's post-norm blocks and its ``project_in``/``project_out`` (``word_embed_proj_dim``) are refused.
"""

from typing import Any

from circuitscope.models._layouts import base_model, dense_mlp, separate_qkv
from circuitscope.models.base import Adapter


def _unsupported(config: Any) -> str | None:
    if not getattr(config, "do_layer_norm_before", True):
        return (
            "do_layer_norm_before=False (OPT-350m's post-norm blocks, LayerNorm after each residual add) is not "
            "wired yet; use another OPT size (125m, 1.3b, 2.7b, 6.7b, ...)"
        )
    proj, hidden = getattr(config, "word_embed_proj_dim", None), getattr(config, "hidden_size", None)
    if proj is not None and proj != hidden:
        return (
            f"word_embed_proj_dim={proj} differs from hidden_size={hidden}: the embeddings pass through "
            "project_in/project_out, which circuitscope does not hook yet; use another OPT size"
        )
    if getattr(config, "_remove_final_layer_norm", False):
        return "_remove_final_layer_norm=True leaves the model without a final norm, which circuitscope needs"
    return None


ADAPTER = Adapter(
    family="opt",
    model_types=("opt",),
    **base_model(
        "model.decoder",
        layers="layers",
        embed="embed_tokens",
        pos_embed="embed_positions",
        final_norm="final_layer_norm",
    ),
    pos_embed_offset=2,
    unembed="lm_head",
    **separate_qkv("self_attn", norm="self_attn_layer_norm", q="q_proj", k="k_proj", v="v_proj", o="out_proj"),
    **dense_mlp("", norm="final_layer_norm", up="fc1", down="fc2", out="fc2"),  # no MLP module: the block calls them
    mlp_flat=True,
    config_names=(("d_mlp", "ffn_dim"),),
    unsupported=_unsupported,
)
