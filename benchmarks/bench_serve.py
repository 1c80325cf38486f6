"""``circuitscope serve`` under load, its overhead on a prompt view, and the page's first load (issue 19).

The server is the real command (``circuitscope serve --port 0 --json`` in a subprocess, loopback); this process
is the clients. For each model (the tests' tiny character-level Llama, saved to a temporary folder, and, unless
``--skip-gemma``, the embedded Gemma-3-270M):

1. Load test: ``--clients`` concurrent clients (default 20, one thread and one keep-alive connection each) post
   ``/api/prompt`` for ``--seconds`` (default 30): requests served, errors (must be 0), p50/p95 latency, rate.
2. Gemma only: a 32-token prompt's round trip (``POST /api/prompt`` and the JSON parsed) against
   ``prompt_view`` on the same prompt called directly in this process (its own Gemma), interleaved, ``--repeats``
   each; the ratio of the medians (target <= 1.5x).
3. The page's first load in headless Chromium (Debian's, through Playwright): navigation until the page's
   ``load`` event and until its first ``/api/info`` answer is in (target < 1 s), median of ``--repeats``
   fresh browser contexts.

    .venv/bin/python benchmarks/bench_serve.py [--clients 20] [--seconds 30] [--repeats 20] [--skip-gemma|--skip-tiny]

``--clients 0`` skips the load test.

The CPU is shared: ``uptime``'s load average is printed next to every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "the cat sat on the mat"
CLIENT_TIMEOUT = 900.0
"""Seconds a client waits for an answer: a request queued behind 19 others on a slow model still counts as served
(an error is a failed request, not a slow one; the latency percentiles show the wait)."""
LONG_TEXT = (
    "The old lighthouse keeper climbed the spiral stairs every evening to light the lamp, watching the ships pass "
    "far out at sea while the gulls circled the rocks below and the wind carried the smell of salt and rain over "
    "the cliffs towards the sleeping village."
)


def prompt_of(model: Any, n_tokens: int) -> str:
    """The start of ``LONG_TEXT`` that tokenises to exactly ``n_tokens`` tokens (BOS included)."""
    ids = model.to_tokens(LONG_TEXT)[0]
    bos = int(ids.shape[0]) - len(model.to_tokens(LONG_TEXT, prepend_bos=False)[0])
    for cut in range(n_tokens - bos, 0, -1):
        text = str(model.to_string(ids[bos : bos + cut]))
        if int(model.to_tokens(text).shape[-1]) == n_tokens:
            return text
    raise RuntimeError(f"no prefix of the text is {n_tokens} tokens")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def served(model: str) -> Iterator[str]:
    """``circuitscope serve --model MODEL --port 0 --json`` in a subprocess: its base URL; stopped after."""
    command = [sys.executable, "-m", "circuitscope.cli.main", "serve", "--model", model, "--port", "0", "--json"]
    env = {**os.environ, "CIRCUITSCOPE_NO_PROGRESS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"circuitscope serve exited with code {process.wait()} before listening")
        yield json.loads(line)["address"]
    finally:
        process.terminate()
        process.wait(30)


def load_test(url: str, clients: int, seconds: float, prompt: str) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as warm:  # the first call computes nothing extra: warm it
        warm.post("/api/prompt", json={"prompt": prompt}).raise_for_status()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as http:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    ok = http.post("/api/prompt", json={"prompt": prompt}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    errors[0] += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cuts = statistics.quantiles(latencies, n=20)
    return {"served": len(latencies) - errors[0], "errors": errors[0], "p50": statistics.median(latencies),
            "p95": cuts[18], "rate": len(latencies) / wall}  # fmt: skip


def round_trip_ratio(url: str, model_name: str, repeats: int) -> dict[str, float]:
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.serve.views.prompt import prompt_view

    model = load_model(model_name)
    prompt = prompt_of(model, 32)
    n_tokens = int(model.to_tokens(prompt).shape[-1])
    http_times, direct_times = [], []
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as http:
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            http.post("/api/prompt", json={"prompt": prompt}).json()
            t1 = time.perf_counter()
            with torch.inference_mode():
                prompt_view(model, prompt).to_json()
            t2 = time.perf_counter()
            if i:  # the first of each is a warm-up
                http_times.append(t1 - t0)
                direct_times.append(t2 - t1)
    http_median, direct_median = statistics.median(http_times), statistics.median(direct_times)
    return {"tokens": n_tokens, "http": http_median, "direct": direct_median, "ratio": http_median / direct_median}


def first_load(url: str, repeats: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright
    from tests.browser import chromium

    loads, ready = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeats):
            context = browser.new_context()
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            t0 = time.perf_counter()
            with page.expect_response(lambda r: r.url.endswith("/api/info")) as info:
                page.goto(url + "/", wait_until="load")
            loads.append(time.perf_counter() - t0)
            info.value.finished()
            ready.append(time.perf_counter() - t0)
            if errors:
                raise RuntimeError(f"the page logged console errors: {errors}")
            context.close()
        browser.close()
    return {"load": statistics.median(loads), "info": statistics.median(ready)}


def bench(model: str, label: str, args: argparse.Namespace, gemma: bool) -> None:
    with served(model) as url:
        print(f"## {label}: server at {url} ({load()})", flush=True)
        stats = load_test(url, args.clients, args.seconds, PROMPT) if args.clients else None
        if stats is not None:
            print(f"load test, {args.clients} clients x {args.seconds:g} s: {stats['served']:.0f} served, "
                  f"{stats['errors']:.0f} errors, p50 {stats['p50'] * 1000:.1f} ms, p95 {stats['p95'] * 1000:.1f} "
                  f"ms, {stats['rate']:.1f} req/s ({load()})", flush=True)  # fmt: skip
        if gemma:
            ratio = round_trip_ratio(url, model, args.repeats)
            print(f"{ratio['tokens']:.0f}-token prompt view: HTTP round trip {ratio['http'] * 1000:.1f} ms, direct "
                  f"call {ratio['direct'] * 1000:.1f} ms, ratio {ratio['ratio']:.2f}x (target <= 1.5x) ({load()})",
                  flush=True)  # fmt: skip
        page = first_load(url, max(3, args.repeats // 4))
        print(f"page first load: load event {page['load'] * 1000:.0f} ms, /api/info answered "
              f"{page['info'] * 1000:.0f} ms (target < 1 s) ({load()})", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-gemma", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    args = parser.parse_args()
    from tests.tiny_models import tiny_text_model

    if not args.skip_tiny:
        with tempfile.TemporaryDirectory() as folder:
            tiny = tiny_text_model()
            tiny.hf_model.save_pretrained(folder)
            tiny.tokenizer.save_pretrained(folder)
            bench(folder, "tiny text model (2 layers, d_model 32)", args, gemma=False)
    if not args.skip_gemma:
        from circuitscope.core.loading import DEFAULT_MODEL

        bench(DEFAULT_MODEL, "Gemma-3-270M", args, gemma=True)


if __name__ == "__main__":
    main()
