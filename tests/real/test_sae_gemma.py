"""Real-model tier: the SAE pipeline on the embedded Gemma-3-270M (short: a few contexts, a few steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from circuitscope.report.sae_dashboard import write_dashboard
from tests.browser import open_in_chromium

pytestmark = [pytest.mark.real, pytest.mark.usefixtures("one_thread")]  # one torch thread, as in tests/sae
HOOK = "blocks.6.hook_resid_post"
PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_collect_train_splice_and_dashboard_on_gemma(gemma: cs.HookedModel, tmp_path: Path) -> None:
    corpus = S.Corpus("prompt", [PROMPT + " The capital of France is Paris, and the capital of Italy is Rome. " * 30])
    cfg = S.CollectConfig(hook=HOOK, tokens=248, context_size=32, batch_size=4, tokens_per_shard=124)
    store = S.collect_activations(gemma, corpus, tmp_path / "acts", cfg, model_name=cs.DEFAULT_MODEL)
    assert store.d_in == 640 and store.n_tokens == 248 and len(store.shards) == 2
    result = S.train_sae(
        store,
        S.TrainConfig(architecture="topk", expansion=2, k=8, tokens=248 * 2, batch_size=124, log_every=1),
        out=tmp_path / "sae",
        progress_bar=False,
    )
    sae = S.load_sae(tmp_path / "sae")
    assert sae.cfg.hook_name == HOOK and sae.cfg.model_name == cs.DEFAULT_MODEL
    tokens = gemma.to_tokens(PROMPT)
    with torch.no_grad():
        clean = gemma(tokens)
        kept = S.run_with_sae(gemma, tokens, sae, keep_error=True)
        _, cache = S.run_with_cache_and_saes(gemma, tokens, sae, names=[])
    # keep_error writes x_hat + (x - x_hat) back: one rounding of residuals up to 6.6e4 at blocks.6 (1 ulp there
    # is 4e-3), shrunk by the later norms; measured 1.5e-5 on logits ~29
    torch.testing.assert_close(kept, clean, atol=2e-3, rtol=0)
    acts = cache[f"{HOOK}.sae.hook_acts"]
    assert acts.shape == (1, tokens.shape[1], 1280) and bool(((acts[0, 1:] > 0).sum(-1) <= 8).all())
    assert result.history[-1]["explained_variance"] > result.history[0]["explained_variance"]
    data = S.feature_dashboard_data(gemma, sae, store_contexts(gemma, corpus), [0, 1])
    page = write_dashboard(data, tmp_path / "dash.html")
    assert open_in_chromium(page).console_errors == []


def store_contexts(model: cs.HookedModel, corpus: S.Corpus) -> torch.Tensor:
    return S.build_contexts(model, corpus, 32).tokens[:4]


def test_sae_for_another_width_is_refused(gemma: cs.HookedModel) -> None:
    wrong = S.create_sae(S.SAEConfig(architecture="topk", d_in=512, d_sae=64, k=4, hook_name=HOOK))
    with pytest.raises(S.SAEShapeError, match="d_in=512"):
        S.run_with_sae(gemma, PROMPT, wrong)
    assert gemma.active_hooks() == []
