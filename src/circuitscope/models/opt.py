"""OPT: learned positions (offset by 2), LayerNorm, separate q/k/v, a ReLU MLP run on flattened positions.

Pre-norm blocks (``do_layer_norm_before=True``, every OPT but 350m): ``x + attn(ln1 x)``, then
``+ fc2(act(fc1(ln2 .)))``. ``hook_pos_embed`` is [batch pos d_model] (OPT's positions follow the attention
mask). OPT-350m's post-norm blocks and its ``project_in``/``project_out`` (``word_embed_proj_dim``) are refused.
"""

from typing import Any

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


# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="opt",
    model_types=("opt",),
    layers="model.decoder.layers",
    embed="model.decoder.embed_tokens",
    pos_embed="model.decoder.embed_positions",
    pos_embed_offset=2,
    final_norm="model.decoder.final_layer_norm",
    unembed="lm_head",
    ln1="self_attn_layer_norm",
    ln2="final_layer_norm",
    attn="self_attn",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.out_proj",
    attn_out="self_attn.out_proj",
    mlp_in="fc1",
    mlp_down="fc2",
    mlp_out="fc2",
    mlp_flat=True,
    config_names=(("d_mlp", "ffn_dim"),),
    unsupported=_unsupported,
)
