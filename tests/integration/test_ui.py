"""The compare and evaluation page (/_crossrank/ui/) in a real headless Chromium (Debian's
chromium and chromium-driver, through selenium), against a real proxy and node.

What the page shows is checked against what the API answers for the same request: both
lists in the API's order, the window slider's effect, OpenSearch's own error message, and a
`crossrank eval` report made through the same proxy, opened query by query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from opensearchpy import OpenSearch, helpers

from crossrank.devnode.browser import find_chromium, headless_chromium
from crossrank.eval.evaluation import run_evaluation
from crossrank.eval.options import EvalOptions
from crossrank.server import build_app
from crossrank.tune.report import CandidateResult, TuneReport
from crossrank.tune.report import write_report as write_tune_report

from proxy_fixtures import ADMIN_TOKEN, ServedProxy, proxy_settings
from scifact import scifact_docs

pytestmark = pytest.mark.integration

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

INDEX = "t-ui-scifact"
ADMIN = {"x-crossrank-admin-token": ADMIN_TOKEN}
POLICY = {"indices": [INDEX], "text_fields": ["title", "text"], "template": "{title}. {text}",
          "window": 20, "max_window": 40}
QUERY = "statins and cardiovascular risk"
TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval_tiny"


@pytest.fixture(scope="module")
def served(opensearch_url: str, tiny_cross_encoder_dir: Path) -> Iterator[ServedProxy]:
    settings = proxy_settings(opensearch_url, tiny_cross_encoder_dir,
                              policy_index=".crossrank-policies-ui")
    proxy = ServedProxy(build_app(settings), settings.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def indexed(served: ServedProxy, os_client: OpenSearch) -> Iterator[str]:
    os_client.indices.delete(index=INDEX, ignore_unavailable=True)
    os_client.indices.create(index=INDEX, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    docs = scifact_docs(400)
    helpers.bulk(os_client, ({"_index": INDEX, "_id": d["_id"], "title": d["title"],
                              "text": d["text"]} for d in docs), refresh=True)
    answer = httpx.put(f"{served.url}/_crossrank/policies/{INDEX}", headers=ADMIN,
                       json=POLICY, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    yield INDEX
    httpx.delete(f"{served.url}/_crossrank/policies/{INDEX}", headers=ADMIN, timeout=30)
    os_client.indices.delete(index=INDEX, ignore_unavailable=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if find_chromium() is None:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver (make system)")
    driver = headless_chromium(1280, 900)
    yield driver
    driver.quit()


def _api_ids(url: str, body: dict[str, Any], **params: str) -> tuple[list[str], httpx.Response]:
    answer = httpx.post(f"{url}/{INDEX}/_search", params=params, json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return [hit["_id"] for hit in answer.json()["hits"]["hits"]], answer


def _body(size: int = 10) -> dict[str, Any]:
    return {"query": {"multi_match": {"query": QUERY, "fields": POLICY["text_fields"]}},
            "size": size}


def _searches(driver: WebDriver) -> int:
    return int(driver.execute_script("return Number(document.body.dataset.searches || 0)"))


def _wait_answer(driver: WebDriver, after: int) -> None:
    """Until the page has rendered a search later than ``after``."""
    WebDriverWait(driver, 90).until(lambda d: _searches(d) > after)


def _ids(driver: WebDriver, arm: str) -> list[str]:
    return [li.get_attribute("data-id")
            for li in driver.find_elements(By.CSS_SELECTOR, f"#{arm}-hits > li")]


def _meta(driver: WebDriver, arm: str) -> dict[str, str]:
    return {div.get_attribute("data-key"): div.find_element(By.TAG_NAME, "dd").text
            for div in driver.find_elements(By.CSS_SELECTOR, f"#{arm}-meta > div")}


def _open(driver: WebDriver, url: str, fragment: str = "") -> None:
    """A fresh load (a new fragment alone would not reload the page)."""
    driver.get("about:blank")
    driver.get(f"{url}/_crossrank/ui/{fragment}")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.readyState") == "complete")


def test_the_page_is_served_read_only(served: ServedProxy) -> None:
    page = httpx.get(f"{served.url}/_crossrank/ui/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert name in page.text
        assert httpx.get(f"{served.url}/_crossrank/ui/{name}", timeout=10).status_code == 200
    bare = httpx.get(f"{served.url}/_crossrank/ui", timeout=10)
    assert bare.status_code == 301 and bare.headers["location"] == "ui/"
    missing = httpx.get(f"{served.url}/_crossrank/ui/../config.yaml", timeout=10)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    written = httpx.post(f"{served.url}/_crossrank/ui/", content=b"x", timeout=10)
    assert written.status_code == 405
    assert written.json()["error"]["type"].endswith("exception")


def test_a_query_typed_in_shows_both_arms_in_the_apis_order(
        browser: WebDriver, served: ServedProxy, indexed: str) -> None:
    _open(browser, served.url)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "index").get_attribute("value") == INDEX)
    before = _searches(browser)
    box = browser.find_element(By.ID, "query")
    box.send_keys(QUERY, Keys.ENTER)  # the keyboard alone
    _wait_answer(browser, before)
    baseline, _ = _api_ids(served.url, _body(), rerank="false")
    reranked, answer = _api_ids(served.url, _body(), rerank="true")
    assert _ids(browser, "baseline") == baseline
    assert _ids(browser, "rerank") == reranked
    assert baseline != reranked  # the tiny model does move hits
    meta = _meta(browser, "rerank")
    assert meta["status"] == "reranked" and meta["arm"] == "rerank" and meta["window"] == "20"
    assert "timing-score" in meta and "timing-retrieve" in meta  # Server-Timing
    assert _meta(browser, "baseline")["reason"] == "rerank_false"
    # each reranked hit says where it came from: its first-stage rank, as the API explains it
    explained = httpx.post(f"{served.url}/{INDEX}/_search", params={"rerank": "true"},
                           json={**_body(), "ext": {"crossrank": {"explain": True}}},
                           timeout=60).json()["hits"]["hits"]
    for rank, (item, hit) in enumerate(zip(browser.find_elements(
            By.CSS_SELECTOR, "#rerank-hits > li"), explained, strict=True), start=1):
        moved = hit["_crossrank"]["first_stage_rank"] - rank
        badge = item.find_element(By.CSS_SELECTOR, ".move [aria-hidden]").text
        assert badge == ("=" if moved == 0 else f"▲ {moved}" if moved > 0 else f"▼ {-moved}")
        assert f"(#{hit['_crossrank']['first_stage_rank']})" in item.text
    policy = browser.find_element(By.ID, "policy").get_attribute("textContent")
    assert orjson.loads(policy)["max_window"] == POLICY["max_window"]
    assert answer.headers["x-crossrank-window"] == "20"


def test_the_window_slider_reruns_the_reranked_arm(browser: WebDriver, served: ServedProxy,
                                                   indexed: str) -> None:
    _open(browser, served.url, "#/compare?" + urlencode({"index": INDEX, "q": QUERY}))
    _wait_answer(browser, 0)
    assert _ids(browser, "rerank") == _api_ids(served.url, _body(), rerank="true")[0]
    slider = browser.find_element(By.ID, "window")
    before = _searches(browser)
    slider.send_keys(Keys.HOME)  # K = 1: only the top hit is scored, the order is BM25's
    _wait_answer(browser, before)
    assert _meta(browser, "rerank")["window"] == "1"
    one = _api_ids(served.url, _body(), rerank="true", rerank_window="1")[0]
    assert _ids(browser, "rerank") == one == _ids(browser, "baseline")
    before = _searches(browser)
    slider.send_keys(Keys.END)  # K = the policy's max_window
    _wait_answer(browser, before)
    assert _meta(browser, "rerank")["window"] == str(POLICY["max_window"])
    widest = _api_ids(served.url, _body(), rerank="true",
                      rerank_window=str(POLICY["max_window"]))[0]
    assert _ids(browser, "rerank") == widest != one


def test_opensearchs_error_is_shown_as_its_message(browser: WebDriver, served: ServedProxy,
                                                   indexed: str) -> None:
    _open(browser, served.url)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "index").get_attribute("value") == INDEX)
    bad = {"query": {"match": {"title": {"query": "x", "no_such_option": 1}}}}
    direct = httpx.post(f"{served.url}/{INDEX}/_search", json=bad, timeout=30)
    assert direct.status_code == 400
    reason = direct.json()["error"]["root_cause"][0]["reason"]
    browser.find_element(By.CSS_SELECTOR, "#dsl-box summary").click()
    dsl = browser.find_element(By.ID, "dsl")
    dsl.clear()
    dsl.send_keys(orjson.dumps(bad).decode())
    before = _searches(browser)
    browser.find_element(By.ID, "run").click()
    _wait_answer(browser, before)
    for arm in ("baseline", "rerank"):
        shown = browser.find_element(By.ID, f"{arm}-error")
        assert shown.is_displayed() and reason in shown.text and "400" in shown.text
        assert _ids(browser, arm) == []
    assert reason in browser.find_element(By.ID, "error").text
    dsl.clear()
    dsl.send_keys("{not json")
    browser.find_element(By.ID, "run").click()
    assert "not JSON" in browser.find_element(By.ID, "error").text


def test_long_documents_are_cut_and_expand(browser: WebDriver, served: ServedProxy,
                                           indexed: str) -> None:
    _open(browser, served.url, "#/compare?" + urlencode({"index": INDEX, "q": QUERY}))
    _wait_answer(browser, 0)
    item = browser.find_elements(By.CSS_SELECTOR, "#rerank-hits > li")[0]
    full = next(d["text"] for d in scifact_docs(400) if d["_id"] == item.get_attribute("data-id"))
    text = item.find_element(By.CSS_SELECTOR, ".text")
    toggle = text.find_element(By.TAG_NAME, "button")
    assert len(text.text) < len(full) and toggle.get_attribute("aria-expanded") == "false"
    toggle.send_keys(Keys.ENTER)  # a button: Enter works as a click
    assert toggle.get_attribute("aria-expanded") == "true" and full in text.text


def test_readable_at_a_phones_width(browser: WebDriver, served: ServedProxy,
                                    indexed: str) -> None:
    browser.set_window_size(390, 844)
    try:
        _open(browser, served.url, "#/compare?" + urlencode({"index": INDEX, "q": QUERY}))
        _wait_answer(browser, 0)
        wide = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, "the page scrolls sideways at 390 px"
        baseline = browser.find_element(By.ID, "arm-baseline").rect
        reranked = browser.find_element(By.ID, "arm-rerank").rect
        assert reranked["y"] >= baseline["y"] + baseline["height"]  # stacked, not squeezed
    finally:
        browser.set_window_size(1280, 900)


@pytest.fixture(scope="module")
def eval_report(served: ServedProxy, tmp_path_factory: pytest.TempPathFactory,
                os_client: OpenSearch) -> Iterator[dict[str, Any]]:
    """`crossrank eval` on the tiny judged fixture, through the same proxy."""
    out = tmp_path_factory.mktemp("ui-eval")
    index = "t-ui-eval-tiny"
    _, paths = run_evaluation(EvalOptions(
        dataset=TINY, proxy=served.url, admin_token=ADMIN_TOKEN, index=index, out=out,
        windows=(1, 3), warmup=1, progress=False))
    data = orjson.loads(paths["json"].read_bytes())
    data["path"] = str(paths["json"])
    yield data
    httpx.delete(f"{served.url}/_crossrank/policies/{index}-eval", headers=ADMIN, timeout=30)
    os_client.indices.delete(index=index, ignore_unavailable=True)


def _load_report(browser: WebDriver, url: str, path: str) -> None:
    _open(browser, url, "#/eval")
    browser.find_element(By.ID, "report-file").send_keys(path)
    try:
        WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#report table"))
    except TimeoutException:
        pytest.fail(f"the report did not render: {browser.find_element(By.ID, 'error').text}")


def test_an_eval_report_renders_and_opens_a_query_with_its_judgments(
        browser: WebDriver, served: ServedProxy, eval_report: dict[str, Any]) -> None:
    _load_report(browser, served.url, eval_report["path"])
    tables = browser.find_elements(By.CSS_SELECTOR, "#report table")
    arms = tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in arms] == \
        [r["key"] for r in eval_report["results"]]
    ndcg = eval_report["results"][2]["metrics"]["ndcg@10"]
    assert arms[2].find_elements(By.TAG_NAME, "td")[3].text == f"{ndcg:.4f}"
    dots = browser.find_elements(By.CSS_SELECTOR, "#report svg circle")
    assert sorted(d.get_attribute("data-key") for d in dots) == \
        sorted(r["key"] for r in eval_report["results"])
    # the per-query list, largest losses first, for the first comparison on nDCG@10
    buttons = browser.find_elements(By.CSS_SELECTOR, "#report button.query")
    first = next(c for c in eval_report["comparisons"] if c["metric"] == "ndcg@10")
    per = {r["key"]: r["per_query"]["ndcg@10"] for r in eval_report["results"]}
    deltas = {q: per[first["candidate"]][q] - per[first["baseline"]][q] for q in per["bm25"]}
    shown = [b.get_attribute("data-qid") for b in buttons]
    assert sorted(shown) == sorted(deltas)
    assert [deltas[q] for q in shown] == sorted(deltas.values())
    qid = shown[0]
    before = _searches(browser)
    buttons[0].click()
    _wait_answer(browser, before)
    assert browser.find_element(By.ID, "compare-view").is_displayed()
    assert browser.find_element(By.ID, "query").get_attribute("value") == \
        eval_report["queries"][qid]["text"]
    judgments = eval_report["queries"][qid]["judgments"]
    marked = 0
    for item in browser.find_elements(By.CSS_SELECTOR, "#rerank-hits > li, #baseline-hits > li"):
        badge = item.find_element(By.CSS_SELECTOR, ".badge").get_attribute("class")
        doc = item.get_attribute("data-id")
        expected = "unjudged" if doc not in judgments else \
            "relevant" if judgments[doc] > 0 else "nonrelevant"
        assert badge.split() == ["badge", expected], (doc, badge)
        marked += doc in judgments
    assert marked > 0
    # the search the eval sent for that arm, its query text filled in
    arm = next(a for a in eval_report["settings"]["arms"]
               if a["name"] == eval_report["results"][1]["arm"])
    sent = orjson.loads(browser.find_element(By.ID, "dsl").get_attribute("value"))
    assert orjson.dumps(sent["query"]) == orjson.dumps(arm["query"]).replace(
        b"{{query}}", eval_report["queries"][qid]["text"].encode())
    # another query typed in is not judged by that report
    dsl = browser.find_element(By.ID, "dsl")
    dsl.clear()
    before = _searches(browser)
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys("kalu", Keys.ENTER)
    _wait_answer(browser, before)
    assert _ids(browser, "rerank")
    assert browser.find_elements(By.CSS_SELECTOR, "#rerank-hits .badge") == []
    assert not browser.find_element(By.ID, "judged-note").is_displayed()


def test_a_file_that_is_not_a_report_says_so(browser: WebDriver, served: ServedProxy,
                                             tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    _open(browser, served.url, "#/eval")
    browser.find_element(By.ID, "report-file").send_keys(str(other))
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "neither a crossrank eval report" in browser.find_element(By.ID, "error").text


def test_a_tune_report_renders_its_candidates(browser: WebDriver, served: ServedProxy,
                                              tmp_path: Path) -> None:
    """The file `crossrank tune` writes (tune/report.py's own writer), browsed."""
    candidates = [CandidateResult(name, fields, ndcg, ndcg - 0.02, ndcg + 0.02, ms)
                  for name, fields, ndcg, ms in (
                      ("off", {"enabled": False}, 0.61, 4.0),
                      ("window=10", {"window": 10}, 0.66, 40.0),
                      ("window=30", {"window": 30}, 0.68, 110.0))]
    report = TuneReport(policy="p", index="docs", first_stage="bm25", queries=40, folds=5,
                        seed=0, judgments="train.tsv", command="crossrank tune ...",
                        candidates=candidates, recommended=candidates[2],
                        cross_validation={
                            "chosen_per_fold": ["window=30"] * 5, "best": "window=30",
                            "held_out_ndcg": 0.67, "off_ndcg": 0.61, "gain": 0.06,
                            "gain_low": 0.02, "gain_high": 0.1, "wins": 20, "ties": 15,
                            "losses": 5, "p_value_t": 0.01, "p_value_randomisation": 0.01})
    path = write_tune_report(report, tmp_path)["json"]
    _load_report(browser, served.url, str(path))
    rows = browser.find_elements(By.CSS_SELECTOR, "#report table tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == \
        ["off", "window=10", "window=30 (recommended)"]
    assert "recommended" in rows[2].get_attribute("class")
    dots = browser.find_elements(By.CSS_SELECTOR, "#report svg circle")
    assert sorted(d.get_attribute("data-key") for d in dots) == ["off", "window=10", "window=30"]
    assert "held_out_ndcg" in browser.find_element(By.CSS_SELECTOR, "#report pre").text
