"""The dashboard, its demo page and the browser tracker in a real headless Chromium (tests/browser.py), against an
embedded server of this module's own: one server, one browser and one page server (another origin) for the module.

The tests run in file order: those that only read come first (the screenshots are of the committed fixtures); those
that track events (stamped with the browser's clock) come last."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from browser import Browser, PageServer, screenshot_folder
from conftest import CLI, ROOT, ServerProcess, free_port, readme_block, run_cli, run_script, token_values
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

pytestmark = pytest.mark.embedded


PRODUCT = {"daily_active_users", "active_users", "retention_cohorts", "feature_usage", "feature_usage_timeline"}
PRODUCT |= {"session_insights", "app_feature_usage"}
API = {"time_series_metrics", "endpoint_performance", "error_analysis", "rate_limit_usage", "geographic_distribution"}
API |= {"api_usage_by_tenant", "usage_metering"}
TENANT_PIPES = sorted(API - {"api_usage_by_tenant"}) + ["user_activity"]  # the endpoints with a tenant_id filter
WINDOW = {"from": "2025-05-03", "to": "2025-06-01"}  # inside the committed fixtures
SETTLED = ("ready", "empty", "error")

# Every panel of a tab (or of the page) as the DOM contract describes it.
PANELS_JS = """
const root = arguments[0] ? document.querySelector('#tab-' + arguments[0]) : document;
return [...root.querySelectorAll('section.panel')].map((panel) => ({
  endpoint: panel.dataset.endpoint, view: panel.dataset.view || null, state: panel.dataset.state,
  params: panel.dataset.params ?? null, message: panel.querySelector('.panel-message')?.textContent ?? null,
  columns: [...panel.querySelectorAll('table.numbers th[data-col]')].map((th) => th.dataset.col),
  rows: [...panel.querySelectorAll('table.numbers tr')].filter((tr) => tr.querySelector('td[data-col]')).map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent]))),
}));
"""
REFRESHES_JS = "return Number(document.body.dataset.refreshes || 0)"
MESSAGES_JS = "return [...document.querySelectorAll('#message, .panel-message')].map((e) => e.textContent)"


@pytest.fixture(scope="module", autouse=True)
def starting(tmp_path_factory):
    """The module's server starts at once, in the background, while Chromium starts and the tracker's tests run."""
    server = ServerProcess(ROOT, tmp_path_factory.mktemp("dashboard") / "data")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(server.start)
        yield future
        future.exception()  # started (or failed) before it is stopped
        server.stop()


@pytest.fixture(scope="module")
def target(starting):
    return starting.result()


@pytest.fixture(scope="module")
def tokens(target):
    return token_values(target)


@pytest.fixture(scope="module")
def browser():
    chromium = Browser()
    yield chromium
    chromium.quit()


@pytest.fixture(scope="module")
def pages():
    server = PageServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshot_folder(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture
def blank(browser, pages):
    """The page server's blank page, ready for `import("/dashboard/tracker.js")`; the script emptied."""
    pages.reset()
    browser.open(f"{pages.origin}/")
    return browser


def dashboard_url(base: str, **state) -> str:
    return f"{base}/dashboard/index.html#{urlencode(state)}"


def settled_now(driver, tab: str, after: int = 0) -> list[dict] | bool:
    """The panels of `tab` once a refresh cycle past `after` has completed with every one settled; else False."""
    if driver.execute_script(REFRESHES_JS) <= after:
        return False
    panels = driver.execute_script(PANELS_JS, tab)
    return panels if panels and all(p["state"] in SETTLED for p in panels) else False


def settled(browser: Browser, tab: str, after: int = 0, timeout: float = 20) -> list[dict]:
    return browser.wait(lambda d: settled_now(d, tab, after), timeout, f"the {tab} tab did not settle after {after}")


def same(text: str, value) -> bool:
    """A cell's text is the JSON value, unformatted."""
    if value is None:
        return text in ("", "null")
    if isinstance(value, int | float):
        try:
            return float(text) == value
        except ValueError:
            return False
    return text == str(value)


def key(panel: dict) -> str:
    return panel["endpoint"] + (f"[{panel['view']}]" if panel["view"] else "")


def check_numbers(target, panels: list[dict], token: str) -> dict[str, list[dict]]:
    """Each panel's table against the endpoint's own answer for the panel's `data-params`, fetched with the same
    token; returns the answers by panel."""
    answers = {}
    for panel in panels:
        name = key(panel)
        assert panel["state"] in ("ready", "empty"), f"{name}: {panel['state']} {panel['message']}"
        assert panel["params"] is not None and "token=" not in panel["params"], name
        url = target.url(f"/v0/pipes/{panel['endpoint']}.json?{panel['params']}")
        response = target.http.get(url, headers=target.auth(token))
        assert response.status_code == 200, f"{name}: {response.text}"
        data = response.json()["data"]
        answers[name] = data
        if panel["state"] == "empty":
            assert data == [] and panel["rows"] == [], name
            continue
        assert panel["columns"] and set(panel["columns"]) <= set(data[0]), f"{name}: {panel['columns']}"
        assert len(panel["rows"]) == len(data), f"{name}: {len(panel['rows'])} rows shown, {len(data)} returned"
        unmatched = [dict(r) for r in data]  # each shown row is one returned row, whatever the order shown
        for row in panel["rows"]:
            match = next((r for r in unmatched if all(same(row[c], r[c]) for c in panel["columns"])), None)
            assert match is not None, f"{name}: shown row {row} is not in the endpoint's answer"
            unmatched.remove(match)
    return answers


def tab_endpoints(panels: list[dict]) -> set[str]:
    return {p["endpoint"] for p in panels}


def show_tab(browser: Browser, tab: str) -> list[dict]:
    before = browser.js(REFRESHES_JS)
    browser.driver.find_element(By.CSS_SELECTOR, f'button[data-tab="{tab}"]').click()
    browser.wait(lambda d: d.find_element(By.ID, f"tab-{tab}").is_displayed(), message=f"#tab-{tab} not shown")
    return settled(browser, tab, after=before - 1)


# --- the tracker, against the page server (a real HTTP server that answers as scripted and records) ---------------

TRACKER = "const {createTracker} = await import('/dashboard/tracker.js');"


def test_tracker_batches_track_calls_into_one_post_of_the_seeds_rows(blank, pages):
    sent = blank.run_async(
        TRACKER
        + """
        const tracker = createTracker({host: location.origin, token: args[0], batchSize: 100, flushInterval: 600000});
        for (let i = 0; i < 7; i++) tracker.track({userId: `user_${i}`, eventType: 'click', properties: {i}});
        const queued = tracker.pending();
        await tracker.flush();
        return [queued, tracker.pending()];
        """,
        "ingest-token",
    )
    assert sent == [7, 0]
    [post] = pages.posts(1)
    assert post["path"] == "/v0/events" and post["query"] == {"name": ["events"]}
    assert post["headers"]["Authorization"] == "Bearer ingest-token"
    assert [r["user_id"] for r in post["rows"]] == [f"user_{i}" for i in range(7)]
    row = post["rows"][0]
    assert set(row) == {"event_id", "user_id", "event_type", "properties", "timestamp"}
    assert row["properties"] == '{"i":0}' and row["event_type"] == "click"
    assert uuid.UUID(row["event_id"]) and dt.datetime.fromisoformat(row["timestamp"]).tzinfo == dt.UTC
    assert len({r["event_id"] for r in post["rows"]}) == 7


def test_tracker_sends_a_full_batch_at_once_and_the_rest_after_the_interval(blank, pages):
    blank.run_async(
        TRACKER
        + """
        const options = {host: location.origin, token: 'ingest-token', batchSize: 3, flushInterval: 300};
        window.tracker = createTracker(options);
        for (let i = 0; i < 7; i++) tracker.track({userId: `user_${i}`, eventType: 'click', sessionId: 's1'});
        """
    )
    posts = pages.posts(3)  # 3 and 3 as they filled, then the last one when the interval ran out
    assert [len(p["rows"]) for p in posts] == [3, 3, 1]
    assert {r["session_id"] for p in posts for r in p["rows"]} == {"s1"}
    # the last answer may still be on its way to the page: flush() resolves once every queued row is acknowledged
    assert blank.run_async("await tracker.flush(); return tracker.pending();") == 0


def test_tracker_flushes_with_keepalive_when_the_page_is_hidden_or_left(blank, pages):
    blank.run_async(
        TRACKER
        + """
        window.sent = [];
        window.tracker = createTracker({host: location.origin, token: 'ingest-token', batchSize: 100,
          flushInterval: 600000, onSent: (answer) => sent.push(answer)});
        for (let i = 0; i < 3; i++) tracker.track({userId: `user_${i}`, eventType: 'click'});
        """
    )
    assert blank.js("return tracker.pending()") == 3 and pages.requests == []
    page = blank.driver.current_window_handle
    blank.driver.switch_to.new_window("tab")  # the tracker's tab turns hidden: visibilitychange
    try:
        [post] = pages.posts(1)
    finally:
        blank.driver.close()
        blank.driver.switch_to.window(page)
    assert len(post["rows"]) == 3
    assert blank.js("return window.sent.map((s) => [s.transport, s.successful_rows])") == [["keepalive", 3]]
    blank.run_async("for (let i = 0; i < 2; i++) tracker.track({userId: `left_${i}`, eventType: 'click'});")
    blank.driver.get("about:blank")  # leaving the page (pagehide): the request outlives it
    assert [r["user_id"] for r in pages.posts(2)[1]["rows"]] == ["left_0", "left_1"]


def test_tracker_hidden_while_backing_off_sends_everything_at_once(blank, pages):
    pages.reset([(429, {"Retry-After": "600"})])  # the first answer asks for ten minutes
    blank.run_async(
        TRACKER
        + """
        window.sent = [];
        window.tracker = createTracker({host: location.origin, token: 'ingest-token', batchSize: 2,
          onSent: (answer) => sent.push([answer.transport, answer.rows])});
        tracker.track({userId: 'user_1', eventType: 'click'});
        tracker.track({userId: 'user_2', eventType: 'click'});
        """
    )
    pages.posts(1)
    blank.js("tracker.track({userId: 'user_3', eventType: 'click'})")  # queued behind the waiting batch
    page = blank.driver.current_window_handle
    blank.driver.switch_to.new_window("tab")
    try:
        posts = pages.posts(3)
    finally:
        blank.driver.close()
        blank.driver.switch_to.window(page)
    assert sorted(r["user_id"] for p in posts[1:] for r in p["rows"]) == ["user_1", "user_2", "user_3"]
    blank.wait(lambda d: d.execute_script("return tracker.pending()") == 0)
    assert sorted(blank.js("return window.sent")) == [["keepalive", 1], ["keepalive", 2]]


RETRYING = (
    TRACKER
    + """
    const log = {retries: [], sent: [], errors: []};
    const tracker = createTracker({host: location.origin, token: 'ingest-token', retryDelay: args[0], maxRetries: 3,
      onRetry: (r) => log.retries.push(r), onSent: (s) => log.sent.push(s.rows), onError: (e) => log.errors.push(e)});
    tracker.track({userId: 'user_1', eventType: 'click'});
    tracker.track({userId: 'user_2', eventType: 'click'});
    await tracker.flush();
    return {...log, pending: tracker.pending()};
    """
)


def test_tracker_backs_off_on_429_for_the_servers_retry_after(blank, pages):
    pages.reset([(429, {"Retry-After": "1"})])
    log = blank.run_async(RETRYING, 100)
    posts = pages.posts(2)
    assert len(posts) == 2 and posts[0]["rows"] == posts[1]["rows"]  # the same rows again, not lost nor doubled
    [retry] = log["retries"]
    assert retry["status"] == 429 and retry["attempt"] == 1
    assert 1000 <= retry["delay"] < 1100  # Retry-After, plus at most retryDelay of jitter
    assert log["sent"] == [2] and log["errors"] == [] and log["pending"] == 0


def test_tracker_backs_off_exponentially_on_5xx_and_gives_up_on_other_errors(blank, pages):
    pages.reset([(503, {}), (500, {})])
    log = blank.run_async(RETRYING, 50)
    assert len(pages.posts(3)) == 3
    assert [(r["status"], r["attempt"]) for r in log["retries"]] == [(503, 1), (500, 2)]
    assert all(0 <= r["delay"] <= 50 * 2 ** (r["attempt"] - 1) for r in log["retries"])
    assert log["sent"] == [2]
    pages.reset([(400, {})])
    log = blank.run_async(RETRYING, 10)  # a 400 is final
    assert len(pages.posts(1)) == 1 and log["retries"] == [] and log["sent"] == []
    assert [(e["status"], len(e["rows"])) for e in log["errors"]] == [(400, 2)] and log["pending"] == 0
    pages.reset([(503, {})] * 4)
    log = blank.run_async(RETRYING, 10)  # still 503 after maxRetries (3) retries: given up, reported
    assert len(pages.posts(4)) == 4 and len(log["retries"]) == 3
    assert [e["status"] for e in log["errors"]] == [503] and log["pending"] == 0


# --- the dashboard, served by the embedded server at /dashboard/, over the committed fixtures ------------------------


def test_dashboard_loads_both_tabs_with_no_console_error_and_the_endpoints_numbers(browser, target, tokens, shots):
    analyst = tokens["analyst"]
    newest = target.sql("SELECT toString(toDate(max(timestamp))) AS day FROM events")[0]["day"]
    since = len(browser.console())
    browser.open(dashboard_url(target.base_url, token=analyst, refresh=0))
    product = settled(browser, "product")
    assert tab_endpoints(product) >= PRODUCT, tab_endpoints(product)
    check_numbers(target, product, analyst)
    assert sum(len(p["rows"]) for p in product if p["state"] == "ready") > 0
    # the default range: the last 30 days up to the newest event, not the clock
    start, end = (browser.driver.find_element(By.ID, i).get_attribute("value") for i in ("from", "to"))
    assert end == newest, (start, end)
    assert (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days in (29, 30), (start, end)
    browser.screenshot("dashboard-product", shots)
    api = show_tab(browser, "api")
    assert not browser.driver.find_element(By.ID, "tab-product").is_displayed()
    assert tab_endpoints(api) >= API, tab_endpoints(api)
    check_numbers(target, api, analyst)
    assert "tab=api" in browser.js("return location.hash")
    browser.screenshot("dashboard-api", shots)
    assert browser.console_errors(since) == []


def test_changing_the_date_range_changes_the_requests_and_the_numbers(browser, target, tokens):
    analyst = tokens["analyst"]
    browser.open(dashboard_url(target.base_url, token=analyst, tab="product", refresh=0, **WINDOW))
    before = {key(p): p for p in settled(browser, "product")}
    assert any(dict(parse_qsl(p["params"])).get("start_date", "").startswith("2025-05-03") for p in before.values())
    refreshes = browser.js(REFRESHES_JS)
    browser.js(  # as a date picker does: a new value, then input and change events
        "const input = document.querySelector('#from'); input.value = arguments[0];"
        "for (const type of ['input', 'change']) input.dispatchEvent(new Event(type, {bubbles: true}));",
        "2025-05-25",
    )
    after = settled(browser, "product", after=refreshes)
    assert dict(parse_qsl(browser.js("return location.hash.slice(1)")))["from"] == "2025-05-25"
    changed = [p for p in after if p["params"] != before[key(p)]["params"]]
    starts = [dict(parse_qsl(p["params"])).get("start_date") for p in changed]
    assert len(changed) >= 3 and all(s is None or s.startswith("2025-05-25") for s in starts), starts
    check_numbers(target, after, analyst)
    assert any(p["rows"] != before[key(p)]["rows"] for p in changed)


def test_choosing_a_tenant_filters_the_api_tab_and_a_fragment_edit_applies(browser, target, tokens):
    analyst = tokens["analyst"]
    browser.open(dashboard_url(target.base_url, token=analyst, tab="api", refresh=0, **WINDOW))
    before = {key(p): p for p in settled(browser, "api")}
    picker = Select(browser.driver.find_element(By.ID, "tenant"))
    tenants = [o.get_attribute("value") for o in picker.options]
    assert tenants[0] == "" and "tenant_acme" in tenants, tenants
    refreshes = browser.js(REFRESHES_JS)
    picker.select_by_value("tenant_acme")
    after = settled(browser, "api", after=refreshes)
    filtered = [p for p in after if "tenant_id=tenant_acme" in p["params"]]
    assert {p["endpoint"] for p in filtered} >= set(TENANT_PIPES) & API, [key(p) for p in after]
    answers = check_numbers(target, after, analyst)
    for panel in filtered:
        assert {r["tenant_id"] for r in answers[key(panel)] if "tenant_id" in r} <= {"tenant_acme"}
    assert any(p["rows"] != before[key(p)]["rows"] for p in filtered)
    refreshes = browser.js(REFRESHES_JS)
    browser.js("location.hash = location.hash.replace('tab=api', 'tab=product')")  # hashchange
    product = settled(browser, "product", after=refreshes)
    assert browser.driver.find_element(By.ID, "tab-product").is_displayed() and tab_endpoints(product) >= PRODUCT


def test_a_tenant_jwt_shows_that_tenant_only_and_no_picker(browser, target):
    jwt = tenant_jwt(target, "tenant_globex")
    browser.open(dashboard_url(target.base_url, token=jwt, tab="api", refresh=0, **WINDOW))
    panels = [p for p in settled(browser, "api") if p["endpoint"] in TENANT_PIPES]
    assert {p["endpoint"] for p in panels} >= set(TENANT_PIPES) & API, panels
    assert not any(e.is_displayed() for e in browser.driver.find_elements(By.ID, "tenant"))
    assert browser.driver.find_element(By.ID, "tenant-fixed").text.strip().endswith("tenant_globex")
    assert not any("tenant_id" in p["params"] for p in panels)  # Tinybird injects the fixed parameter
    answers = check_numbers(target, panels, jwt)
    seen = {r["tenant_id"] for rows in answers.values() for r in rows if "tenant_id" in r}
    assert seen == {"tenant_globex"}


def tenant_jwt(target, tenant: str, *extra: str) -> str:
    pipes = [arg for pipe in TENANT_PIPES for arg in ("--pipe", pipe)]
    minted = run_cli(target, "token", "jwt", *pipes, "--fixed", f"tenant_id={tenant}", *extra)
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


def test_the_readmes_embed_example_shows_one_tenant_inside_a_customers_page(browser, target, pages):
    """The README's tenant JWT command and its <iframe>, run as written (the hosts pointed at this server), on a
    page of another origin: the dashboard inside it shows tenant_acme only."""
    script = readme_block("embed-example").replace(".venv/bin/usage-analytics", CLI) + 'printf %s "$JWT"'
    minted = run_script(script, target)
    assert minted.returncode == 0 and minted.stdout.count(".") == 2, minted.stderr
    iframe = readme_block("embed-example", "html")
    iframe = iframe.replace("https://analytics.example.com", target.base_url).replace(
        "https://api.tinybird.co", target.base_url
    )
    iframe = iframe.replace("token=JWT", f"token={minted.stdout}")
    pages.pages["/customer.html"] = f"<!doctype html><title>customer</title><body>{iframe}</body>".encode()
    browser.open(f"{pages.origin}/customer.html")
    browser.driver.switch_to.frame(browser.driver.find_element(By.TAG_NAME, "iframe"))
    try:
        panels = settled(browser, "api")
        assert browser.driver.find_element(By.ID, "tenant-fixed").text.strip().endswith("tenant_acme")
        assert not any(e.is_displayed() for e in browser.driver.find_elements(By.ID, "tenant"))
        answers = check_numbers(target, panels, minted.stdout)
        assert {r["tenant_id"] for rows in answers.values() for r in rows if "tenant_id" in r} == {"tenant_acme"}
    finally:
        browser.driver.switch_to.default_content()


def test_a_400_shows_the_servers_error_in_its_panel_and_a_429_backs_off(browser, target, tokens):
    analyst = tokens["analyst"]
    browser.open(dashboard_url(target.base_url, token=analyst, tab="api", refresh=0, granularity="fortnight", **WINDOW))
    [series] = [p for p in settled(browser, "api") if p["endpoint"] == "time_series_metrics"]
    url = target.url(f"/v0/pipes/time_series_metrics.json?{series['params']}")
    refused = target.http.get(url, headers=target.auth(analyst))
    assert refused.status_code == 400 and series["state"] == "error"
    assert refused.json()["error"] in series["message"]
    # a JWT allowed 4 requests a second, and the tab's panels asking at once: 429s, Retry-After, then every answer
    jwt = tenant_jwt(target, "tenant_acme", "--rps", "4")
    browser.open(dashboard_url(target.base_url, token=jwt, tab="api", refresh=0, **WINDOW))
    said = set()

    def retried_then_settled(driver):
        texts = driver.execute_script(MESSAGES_JS)
        said.update(t for t in texts if "rate limited, retrying" in t)
        return settled_now(driver, "api") if said else False

    panels = browser.wait(retried_then_settled, timeout=30, message="no 429 seen, or the panels never settled")
    assert {p["endpoint"] for p in panels} >= set(TENANT_PIPES) & API
    check_numbers(target, panels, tenant_jwt(target, "tenant_acme"))


def test_a_bad_token_says_so_in_the_banner(browser, target):
    browser.open(dashboard_url(target.base_url, token="p.not-a-token", refresh=0, **WINDOW))
    banner = browser.driver.find_element(By.ID, "message")
    browser.wait(lambda _: banner.is_displayed(), message="no #message banner")
    assert "token" in banner.text.lower(), banner.text


def test_a_page_from_another_origin_reads_the_api_and_tracks_into_it(browser, target, tokens, pages):
    """CORS: the dashboard served by the page server calls the embedded server's API (a preflight for every
    Authorization header); the tracker on that page appends with the ingest token, and the rows take the DEFAULTs."""
    analyst, ingest = tokens["analyst"], tokens["ingest"]
    browser.open(dashboard_url(pages.origin, host=target.base_url, token=analyst, refresh=0, **WINDOW))
    check_numbers(target, settled(browser, "product"), analyst)
    user = f"browser_{uuid.uuid4().hex[:12]}"
    answer = browser.run_async(
        TRACKER
        + """
        const [host, ingest, analyst, user] = args;
        const seen = {sent: [], errors: []};
        const log = {onSent: (s) => seen.sent.push(s), onError: (e) => seen.errors.push([e.status, e.error])};
        const tracker = createTracker({host, token: ingest, wait: true, ...log});
        tracker.track({userId: user, eventType: 'page_view', properties: {page: '/pricing'}});
        tracker.track({userId: user, eventType: 'button_click', properties: {button: 'signup'}});
        await tracker.flush();
        const reader = createTracker({host, token: analyst, maxRetries: 0, ...log});  // a read token cannot append
        reader.track({userId: user, eventType: 'page_view'});
        await reader.flush();
        return seen;
        """,
        target.base_url,
        ingest,
        analyst,
        user,
    )
    assert [(s["successful_rows"], s["quarantined_rows"]) for s in answer["sent"]] == [(2, 0)]
    assert [status for status, _ in answer["errors"]] == [403] and answer["errors"][0][1]  # the server's message
    stored = target.sql(
        "SELECT event_type, session_id, event_name, page, feature, properties FROM events "
        f"WHERE user_id = '{user}' ORDER BY event_type"
    )
    assert stored == [
        {**dict.fromkeys(("session_id", "event_name", "page", "feature"), ""), "event_type": t, "properties": p}
        for t, p in (("button_click", '{"button":"signup"}'), ("page_view", '{"page":"/pricing"}'))
    ]


def test_dashboard_readmes_static_server_serves_it_from_anywhere(browser, target, tokens):
    """dashboard/README.md's way to open it against an API that does not serve the files: its command as written
    (another port), then the URL it says to open, the host and a read token in the fragment."""
    block = (ROOT / "dashboard" / "README.md").read_text().split("```bash")[1].split("```")[0]
    command, opened = (line.strip() for line in block.strip().splitlines())
    assert command == "python3 -m http.server 8080 -d dashboard", command
    port = str(free_port())
    static = subprocess.Popen(
        command.replace("8080", port).split(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = (
            opened.removeprefix("# then open ").replace("8080", port).replace("http://localhost:7181", target.base_url)
        )
        url = url.replace("<a read token>", tokens["analyst"]) + "&" + urlencode({"refresh": 0, **WINDOW})

        def listening(_) -> bool:
            try:
                return target.http.get(url.split("#")[0], timeout=2).ok
            except requests.ConnectionError:
                return False

        browser.wait(listening, message="http.server did not answer")
        browser.open(url)
        check_numbers(target, settled(browser, "product"), tokens["analyst"])
    finally:
        static.terminate()
        static.wait(timeout=10)


def test_the_demo_pages_clicks_and_an_ingest_show_on_the_feature_usage_panel_at_the_next_refresh(
    browser, target, tokens, shots, tmp_path
):
    demo_url = f"{target.base_url}/dashboard/demo.html#{urlencode({'token': tokens['ingest']})}"
    since = len(browser.console())
    browser.open(demo_url)
    sent = lambda n: lambda d: d.find_element(By.ID, "sent").text == str(n)  # noqa: E731
    assert not browser.driver.find_element(By.ID, "connect").is_displayed()  # the fragment has the token
    click = browser.driver.find_element(By.CSS_SELECTOR, 'button[data-feature="reports"]')
    click.click()
    browser.wait(sent(1), message="the demo's first event was not acknowledged")
    demo = browser.driver.current_window_handle
    # the dashboard in a window of its own, on its default range (which now ends today, at the demo's event)
    browser.driver.switch_to.new_window("window")
    browser.driver.get(dashboard_url(target.base_url, token=tokens["analyst"], tab="product", refresh=1))
    feature_usage = lambda panels: next(p for p in panels if p["endpoint"] == "feature_usage" and not p["view"])  # noqa: E731
    usage = lambda panel: next(int(r["usage_count"]) for r in panel["rows"] if r["feature"] == "reports")  # noqa: E731
    baseline = usage(feature_usage(settled(browser, "product")))
    browser.js("window.sameDocument = true")
    dashboard = browser.driver.current_window_handle
    browser.driver.switch_to.window(demo)
    for _ in range(3):
        click.click()
    browser.wait(sent(4), message="the demo's clicks were not acknowledged")
    browser.screenshot("demo", shots)
    browser.driver.switch_to.window(dashboard)
    acknowledged_at = browser.js(REFRESHES_JS)

    def moved(driver):
        panel = feature_usage(driver.execute_script(PANELS_JS, "product"))
        return panel["state"] == "ready" and usage(panel) == baseline + 3 and driver.execute_script(REFRESHES_JS)

    seen_at = browser.wait(moved, timeout=20, message="the clicks did not reach the feature usage panel")
    assert seen_at <= acknowledged_at + 2  # the first cycle started after the acknowledgement shows them
    assert browser.js("return window.sameDocument") is True  # no reload
    # and rows sent by `usage-analytics ingest` (a file, the ingest token) move the same panel at a later refresh
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        {"event_id": f"cli-{uuid.uuid4().hex}", "user_id": "cli", "event_type": "use", "properties": "{}"} for _ in "ab"
    ]
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps({**r, "feature": "reports", "timestamp": now}) + "\n" for r in rows))
    try:
        sent_by_cli = run_cli(
            None, "ingest", "events", str(source), "--host", target.base_url, "--token", tokens["ingest"]
        )
    finally:
        source.unlink()
    assert sent_by_cli.returncode == 0 and "acknowledged 2, quarantined 0" in sent_by_cli.stdout, sent_by_cli

    def moved_again(driver):
        panel = feature_usage(driver.execute_script(PANELS_JS, "product"))
        return panel["state"] == "ready" and usage(panel) == baseline + 5

    browser.wait(moved_again, timeout=20, message="the ingested rows did not reach the feature usage panel")
    assert browser.js("return window.sameDocument") is True
    assert browser.console_errors(since) == []
    browser.driver.close()
    browser.driver.switch_to.window(demo)
