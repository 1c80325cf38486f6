"""The explorer's page in headless Chromium (Playwright driving Debian's chromium) against a live server on the
tiny character-level model: what the page shows equals what the API answers, view by view, and it opens
without console errors. One browser and one server for the module."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, sync_playwright

from circuitscope.serve import ServeConfig, Workbench, create_app
from circuitscope.serve.server import running
from tests.browser import chromium

WIDTH, HEIGHT = 1280, 800
PROMPT = "the cat sat on the mat"  # every character is one token of the tiny text model
ANSWER, WRONG = "a", "o"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (closed when Playwright stops)."""
    with sync_playwright() as p:
        yield p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])


@dataclass
class Opened:
    page: Page
    """The explorer, loaded (``/api/info`` answered)."""
    errors: list[str]
    """Console errors and uncaught exceptions so far."""


class _Tab:
    """The module's one browser tab and the console errors seen since the last load."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture(scope="module")
def tab(browser: Browser) -> Iterator[_Tab]:
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield _Tab(page)
    context.close()


@pytest.fixture
def opened(tab: _Tab, live_server: str) -> Opened:
    """The explorer loaded afresh in the module's tab (nothing of another test's work kept but saved sessions)."""
    tab.errors.clear()
    tab.page.goto(live_server + "/")
    tab.page.wait_for_selector("html[data-ready]", state="attached")
    return Opened(tab.page, tab.errors)


def _run_prompt(page: Page, answer: str = "", wrong: str = "") -> None:
    page.fill("#prompt", PROMPT)
    page.fill("#answer", answer)
    page.fill("#wrong", wrong)
    page.press("#prompt", "Enter")
    page.wait_for_selector("#predictions")


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _values(page: Page, selector: str, attribute: str) -> list[str]:
    return page.eval_on_selector_all(selector, f"es => es.map(e => e.getAttribute('{attribute}'))")


def test_the_page_opens_without_console_errors_and_fits(
    opened: Opened, request: pytest.FixtureRequest, client: TestClient
) -> None:
    page = opened.page
    load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    request.node.user_properties.append(("first_load_ms", load_ms))  # measured; timings are never assertions
    assert opened.errors == []
    info = client.get("/api/info").json()
    assert info["model"] in (page.text_content("#model") or "")
    assert page.locator('[role="tab"]').count() == 7
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no horizontal scrolling


def test_the_predictions_and_the_logit_lens_are_the_apis(opened: Opened, client: TestClient) -> None:
    page = opened.page
    _run_prompt(page, ANSWER, WRONG)
    api = _post(client, "/api/prompt", {"prompt": PROMPT, "answer": ANSWER, "wrong": WRONG})
    tokens = _values(page, "#predictions tbody tr", "data-token")
    probs = [float(p) for p in _values(page, "#predictions tbody tr", "data-prob")]
    assert (tokens, probs) == ([p["token"] for p in api["predictions"]], [p["prob"] for p in api["predictions"]])
    lens = [float(v) for v in _values(page, "#lens td[data-row]", "data-value")]
    assert lens == [cell["prob"] for row in api["logit_lens"]["top"] for cell in row]
    dla = api["dla"]
    rows = zip(dla["heads"], dla["mlps"], dla["layers"], strict=True)
    expected = [x for heads, mlp, layer in rows for x in (*heads, mlp, layer)]  # heads, the MLP, the layer's sum
    assert [float(v) for v in _values(page, "#dla td[data-row]", "data-value")] == expected
    page.focus("#lens td[data-row='0'][data-col='0']")  # the keyboard shows the top 5 of a cell, arrows move
    page.keyboard.press("ArrowRight")
    tip = page.locator("#panel-prompt .tip:visible")
    assert [t.strip() for t in tip.locator("li .tok").all_text_contents()] == [
        x["token"].replace(" ", "\u00b7") for x in api["logit_lens"]["top_k"][0][1]
    ]


def test_a_head_opens_with_its_pattern(opened: Opened, client: TestClient) -> None:
    page = opened.page
    _run_prompt(page)
    page.click("#tab-attention")
    page.click('button.head[data-layer="1"][data-head="0"]')
    page.wait_for_selector("#pattern")
    api = _post(client, "/api/attention", {"prompt": PROMPT})
    assert page.get_attribute("#attention-large", "data-head") == "1.0"
    shown = [float(v) for v in _values(page, "#pattern td[data-row]", "data-value")]
    assert shown == [x for row in api["patterns"][1][0] for x in row]
    assert page.locator("button.head").count() == api["n_layers"] * api["n_heads"]
    assert opened.errors == []


def _logit_diff(page: Page) -> float:
    return float(page.get_attribute("#logit-diff", "data-value") or "nan")


def test_ablating_a_head_gives_the_apis_logit_difference_and_removing_it_returns(
    opened: Opened, client: TestClient
) -> None:
    page = opened.page
    _run_prompt(page, ANSWER, WRONG)
    page.click("#tab-intervene")
    page.click('#iv-components td[data-row="1"][data-col="1"]')  # L1H1, zero-ablated
    page.wait_for_selector("#iv-list li[data-label='L1H1 zero']")
    spec = {"kind": "zero", "component": "head", "layer": 1, "head": 1, "source": None}
    api = _post(client, "/api/intervene", {"prompt": PROMPT, "answer": ANSWER, "wrong": WRONG, "interventions": [spec]})
    page.wait_for_selector("#iv-result[data-count='1']")
    assert _logit_diff(page) == api["logit_diff"] != api["clean_logit_diff"]
    page.click("#iv-list button.remove")
    page.wait_for_selector("#iv-result[data-count='0']")
    assert _logit_diff(page) == api["clean_logit_diff"]
    assert opened.errors == []


def test_a_feature_page_opens_from_a_token_and_by_index(opened: Opened, client: TestClient) -> None:
    page = opened.page
    _run_prompt(page)
    page.click("#tab-features")
    chip = page.locator("button.chip").first
    chip.wait_for()
    feature = int(chip.get_attribute("data-feature") or "-1")
    chip.click()
    page.wait_for_selector(f"#ft-title[data-index='{feature}']")
    source = page.input_value("#ft-source")
    api = client.get("/api/feature", params={"source": source, "index": feature}).json()
    assert page.locator("#ft-contexts .context").count() == len(api["contexts"])
    assert page.locator("svg.histogram rect").count() == len(api["histogram"]["counts"])
    assert page.locator("table.logits tr").count() == len(api["top_logits"]) + len(api["bottom_logits"])
    page.fill("#ft-index", "3")
    page.press("#ft-index", "Enter")
    page.wait_for_selector("#ft-title[data-index='3']")
    assert opened.errors == []


def test_a_graph_job_starts_and_is_cancelled(opened: Opened, workbench: Workbench) -> None:
    page = opened.page
    _run_prompt(page)
    page.click("#tab-jobs")
    with workbench.job_model():  # holds the jobs' model: the job cannot finish before it is cancelled
        page.click("#jb-start")
        page.click("#jb-list tr[data-state] button.cancel")
    page.wait_for_selector("#jb-list tr[data-state='cancelled']")
    assert page.locator("#jb-list tr[data-state] button.cancel").count() == 0  # polling saw it end
    assert opened.errors == []


def test_feature_statistics_run_as_a_job_and_open_a_feature(opened: Opened, client: TestClient) -> None:
    page = opened.page
    page.click("#tab-features")
    source = page.locator("#ft-source").input_value()
    page.click("#tab-jobs")
    page.click("#jb-stats")
    page.wait_for_selector("#jb-list tr[data-state='done'] td:text('feature_stats')")
    job = page.locator("#jb-list tr[data-state='done']").filter(has_text="feature_stats").last.get_attribute("data-job")
    page.locator(f"#jb-list tr[data-job='{job}'] button").click()
    page.wait_for_selector(f"#jb-result table[data-stats='{source}']")
    api = client.get(f"/api/jobs/{job}/result").json()
    rows = page.locator("#jb-result tbody tr")
    assert rows.count() == len(api["most_frequent"]) > 0
    assert rows.first.locator("td").first.inner_text() == f"#{api['most_frequent'][0]['feature']}"
    rows.first.locator("button").click()
    page.wait_for_selector(f"#ft-title[data-index='{api['most_frequent'][0]['feature']}']")
    assert opened.errors == []


def test_a_steering_sweep_runs_as_a_job_and_shows_its_grids(opened: Opened, client: TestClient) -> None:
    page = opened.page
    page.click("#tab-steering")
    page.fill("#st-prompt", "i feel")
    page.fill("#sw-targets", "a")
    page.fill("#sw-layers", "0, 1")
    page.fill("#sw-coefs", "0, 4")
    page.click("#sw-start")
    page.wait_for_selector("#jb-list tr[data-state='done'] td:text('steering_sweep')")
    row = page.locator("#jb-list tr[data-state='done']").filter(has_text="steering_sweep").last
    job = row.get_attribute("data-job")
    row.locator("button").click()
    page.wait_for_selector("#jb-result table[data-sweep='effect']")
    api = client.get(f"/api/jobs/{job}/result").json()
    assert api["layers"] == [0, 1] and api["coefficients"] == [0.0, 4.0]
    shown = page.locator("#jb-result table[data-sweep='effect'] tbody td").all_inner_texts()
    assert shown == [f"{v:.3f}" for row in api["scores"] for v in row]
    assert opened.errors == []


def test_a_graph_file_opens_in_the_exported_viewer(opened: Opened, client: TestClient) -> None:
    page = opened.page
    page.click("#tab-graphs")
    page.select_option("#gr-file", "graph:graph.json")
    page.click("#gr-open")
    frame = page.frame_locator("#gr-frame")
    frame.locator("html[data-cg-ready]").wait_for(state="attached")
    api = client.get("/api/graph", params={"path": "graph.json"}).json()
    assert frame.locator(".cg-node").count() == len(api["nodes"])
    assert frame.locator("#cg-link-count").get_attribute("data-shown") == str(len(api["links"]))
    assert opened.errors == []


def _generated(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    with client.stream("POST", "/api/steer/generate", json=body) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert lines[-1]["done"] is True
    return lines[-1]


def test_a_steered_generation_streams_both_columns(opened: Opened, client: TestClient) -> None:
    page = opened.page
    page.fill("#prompt", PROMPT)
    page.click("#tab-steering")
    page.fill("#st-pos", "love")
    page.fill("#st-neg", "hate")
    page.select_option("#st-layer", "0")
    page.click("#st-build")
    page.wait_for_selector("#st-generate:not([disabled])")
    vector = page.get_attribute("#st-vector", "data-vector")
    page.fill("#st-coef", "8")
    page.fill("#st-max", "6")
    page.click("#st-generate")
    page.wait_for_selector("#st-out[data-state='done']")
    columns = {c: page.locator(f"#st-out pre[data-column='{c}'] .new").count() for c in ("plain", "steered")}
    assert columns == {"plain": 6, "steered": 6}  # one span per streamed step in each column
    api = _generated(client, {"prompt": PROMPT, "vector": vector, "coefficient": 8, "max_new_tokens": 6})
    for column in ("plain", "steered"):
        assert "".join(page.locator(f"#st-out pre[data-column='{column}'] .new").all_text_contents()) == api[column]
    assert opened.errors == []


def test_an_api_error_is_shown_in_the_page(opened: Opened, client: TestClient) -> None:
    page = opened.page
    page.fill("#prompt", PROMPT)
    page.fill("#answer", "ab")  # two tokens: refused
    page.fill("#wrong", WRONG)
    page.press("#prompt", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    api = client.post("/api/prompt", json={"prompt": PROMPT, "answer": "ab", "wrong": WRONG})
    assert api.status_code == 400
    assert page.text_content("#error-text") == api.json()["error"]
    assert page.get_attribute("#error", "data-type") == api.json()["type"]
    page.click("#error .dismiss")
    assert page.locator("#error").is_hidden()


def test_the_open_work_is_saved_and_opened_again(opened: Opened) -> None:
    page = opened.page
    _run_prompt(page, ANSWER, WRONG)
    page.click("#tab-intervene")
    page.click('#iv-components td[data-row="0"][data-col="0"]')
    page.wait_for_selector("#iv-list li[data-label='L0H0 zero']")
    page.fill("#ss-name", "page-test")
    page.click("#ss-save")
    page.wait_for_function("document.getElementById('ss-msg').textContent.startsWith('saved')")
    page.click("#iv-list button.remove")
    page.fill("#prompt", "something else")
    page.select_option("#ss-list", "page-test")
    page.click("#ss-open")
    page.wait_for_function("document.getElementById('ss-msg').textContent.startsWith('opened')")
    bar = [page.input_value(f"#{name}") for name in ("prompt", "answer", "wrong")]
    assert bar == [PROMPT, ANSWER, WRONG]
    page.wait_for_selector("#iv-list li[data-label='L0H0 zero']")


def test_the_token_in_the_address_goes_with_every_api_call(
    tab: _Tab, workbench: Workbench, serve_config: ServeConfig
) -> None:
    token = "page-test-token"
    guarded = create_app(workbench, dataclasses.replace(serve_config, host="0.0.0.0", token=token))
    with running(guarded, serve_config) as url:  # the app wants the token; the server listens on loopback only
        page = tab.page
        sent: list[str | None] = []
        page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/api/" in r.url else None)
        page.goto(f"{url}/?token={token}")
        page.wait_for_selector("html[data-ready]", state="attached")
        _run_prompt(page)
        assert len(sent) >= 3 and set(sent) == {f"Bearer {token}"}  # info, sessions, prompt
        assert page.locator("#error").is_hidden()
