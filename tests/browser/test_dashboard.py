"""The dashboard in a real browser (Debian's Chromium) against a real ``warden serve``, a real
worker and a workload: live counters, a failing task followed through Tasks, Errors and its
timeline, DLQ actions by scope, cross-site refusal, and no console error or CSP violation on any
page. Screenshots of every page land in ``.artifacts/browser/``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.apps.dashboard import HOSTILE
from tests.browser.conftest import Stack, Watch, loaded, login, shot
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = ["/", "/tasks", "/task-types", "/queues", "/workers", "/dlq", "/errors", "/breakers",
         "/alerts"]


@pytest.fixture(scope="module")
def stack(stack_factory: Any) -> Stack:
    """One fleet for the module, with finished tasks and one task dead after two retries."""
    s = stack_factory()
    for i in range(5):
        s.send("shop.ship", i)
    s.failing_id = s.send("shop.charge", 7, api_key="sk_live_do_not_show")
    wait_for(lambda: s.api("/api/v1/dlq/count").get("matched", 0) >= 1, 60, 0.3,
             "the failing task in the DLQ")
    return s


def new_page(browser: Browser, *, dark: bool = False, phone: bool = False) -> Page:
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
    context = browser.new_context(viewport=size, color_scheme="dark" if dark else "light",
                                  is_mobile=phone, has_touch=phone)
    return context.new_page()


def dlq_entry_id(stack: Stack) -> str:
    return str(stack.api("/api/v1/dlq", limit=1)["items"][0]["id"])


def test_every_page_renders_without_console_errors_or_csp_violations(
        stack: Stack, browser: Browser) -> None:
    """Each page, signed in with an operate token, renders its data with no console error and no
    CSP violation; the task, task-type, DLQ-entry and error-group pages too."""
    page = new_page(browser)
    watch = Watch(page)
    page.goto(f"{stack.url}/login")
    shot(page, "login")
    login(page, stack.url, stack.tokens["operate"])
    entry = dlq_entry_id(stack)
    group = stack.api("/api/v1/errors", limit=1)["items"][0]["fingerprint"]
    details = [f"/tasks/{stack.failing_id}", "/task-types/shop.charge",
               f"/dlq/{quote(entry)}", f"/errors/{quote(group)}"]
    for path in PAGES + details:
        page.goto(stack.url + path)
        loaded(page)
        expect(page.locator("#error")).to_be_hidden()
        page.wait_for_timeout(300)  # charts and late panels
        name = path.strip("/").replace("/", "-") or "overview"
        shot(page, re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80])
        watch.assert_clean(path)
    page.context.close()


def test_dark_theme_and_phone_layout(stack: Stack, browser: Browser) -> None:
    """The system's dark theme is followed, and a phone gets the collapsed menu and no sideways
    scrolling."""
    page = new_page(browser, dark=True, phone=True)
    watch = Watch(page)
    login(page, stack.url, stack.tokens["read"])
    loaded(page)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 19, 24)", background
    expect(page.locator("#nav")).to_be_hidden()
    page.click("#nav-toggle")
    expect(page.locator("#nav")).to_be_visible()
    page.click("#nav-toggle")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "phone-dark-overview")
    page.goto(f"{stack.url}/tasks")
    loaded(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "phone-dark-tasks")
    watch.assert_clean("phone")
    page.context.close()


def test_overview_counters_change_live_without_reload(stack: Stack, browser: Browser) -> None:
    """Tasks finishing while the overview is open change its counters within 3 s, with no
    navigation (the page's own document stays the same)."""
    page = new_page(browser)
    login(page, stack.url, stack.tokens["read"])
    loaded(page)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
    tile = page.locator("#kpi-finished .tile-value")
    expect(tile).not_to_have_text("…")
    before = tile.inner_text()
    page.evaluate("window.__same_document = true")
    ids = [stack.send("shop.ship", 100 + i) for i in range(3)]
    wait_for(lambda: all(stack.task(i).get("state") == "SUCCESS" for i in ids),
             30, 0.1, "three tasks finished")
    expect(tile).not_to_have_text(before, timeout=3000)
    assert page.evaluate("window.__same_document === true"), "the page was reloaded"
    page.context.close()


def test_tasks_page_shows_a_new_task_live(stack: Stack, browser: Browser) -> None:
    """A task sent while the Tasks page is open appears on it and reaches SUCCESS, from the
    stream's task events, with no reload."""
    page = new_page(browser)
    watch = Watch(page)
    login(page, stack.url, stack.tokens["read"])
    page.goto(f"{stack.url}/tasks")
    loaded(page)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
    page.evaluate("window.__same_document = true")
    task_id = stack.send("shop.ship", 999)
    row = page.locator(f"tr[data-task='{task_id}']")
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=10_000)
    assert page.evaluate("window.__same_document === true"), "the page was reloaded"
    watch.assert_clean("tasks live")
    page.context.close()


def test_failing_task_in_tasks_errors_and_its_timeline(stack: Stack, browser: Browser) -> None:
    """The task that failed twice and died is listed under Tasks (filter state=FAILURE) and in
    Errors, its error text shows literally (markup not run), its secret argument is masked, and
    its page shows the timeline from its first send, with both retries and the DLQ."""
    page = new_page(browser)
    watch = Watch(page)
    login(page, stack.url, stack.tokens["read"])
    task_id = stack.failing_id
    page.goto(f"{stack.url}/tasks?state=FAILURE&name=shop.charge")
    loaded(page)
    row = page.locator("tbody tr", has_text=task_id)
    expect(row).to_be_visible()
    expect(row).to_contain_text(HOSTILE)
    page.goto(f"{stack.url}/errors")
    loaded(page)
    expect(page.locator("#content")).to_contain_text(HOSTILE)
    expect(page.locator("#content")).to_contain_text("shop.charge")
    page.goto(f"{stack.url}/tasks/{task_id}")
    loaded(page)
    expect(page.locator("ol.timeline li[data-event='retry']")).to_have_count(2)
    # The first publish opens the timeline: a retry's re-publish never takes its place.
    expect(page.locator("ol.timeline li").first).to_have_attribute("data-event", "sent")
    expect(page.locator("ol.timeline li[data-event='failed']")).to_have_count(1)
    expect(page.locator("ol.timeline li[data-event='dead_lettered']")).to_have_count(1)
    expect(page.locator("ol.timeline")).to_contain_text(HOSTILE)
    assert "sk_live_do_not_show" not in page.content()
    assert page.evaluate("window.__pwned === undefined"), "the error text ran as a script"
    assert page.locator("script", has_text="__pwned").count() == 0
    shot(page, "task-failed-timeline")
    watch.assert_clean("failing task")
    page.context.close()


def test_running_task_shows_its_progress_moving(stack: Stack, browser: Browser) -> None:
    """A long-running task's page shows a progress bar that advances while it runs, then its
    end, without a reload."""
    task_id = stack.send("shop.export", 8, 0.6)
    wait_for(lambda: (stack.task(task_id).get("progress") or {}).get("done"),
             30, 0.1, "first progress report")
    page = new_page(browser)
    login(page, stack.url, stack.tokens["read"])
    page.goto(f"{stack.url}/tasks/{task_id}")
    loaded(page)
    bar = page.locator("progress")
    expect(bar).to_be_visible()
    first = float(bar.get_attribute("value") or 0)
    page.wait_for_function(
        "(v) => Number(document.querySelector('progress')?.value) > v", arg=first,
        timeout=10_000)
    shot(page, "task-progress")
    expect(page.locator("h1 .badge")).to_have_text("SUCCESS", timeout=15_000)
    page.context.close()


def test_bulk_confirmation_states_the_count(stack: Stack, browser: Browser) -> None:
    """"Requeue all" asks first, saying how many entries match the filter; cancelling does
    nothing."""
    for i in range(2):
        stack.send("shop.charge", 200 + i)
    wait_for(lambda: stack.api("/api/v1/dlq/count", task_name="shop.charge")["matched"] >= 3,
             60, 0.3, "three entries in the DLQ")
    expected = stack.api("/api/v1/dlq/count", task_name="shop.charge")["matched"]
    page = new_page(browser)
    login(page, stack.url, stack.tokens["operate"])
    page.goto(f"{stack.url}/dlq?task_name=shop.charge")
    loaded(page)
    page.click("[data-action='bulk-requeue']")
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(
        f"Requeue {expected} entries matching task_name=shop.charge")
    shot(page, "dlq-bulk-confirm")
    page.click("#confirm button[value='cancel']")
    expect(dialog).to_be_hidden()
    assert stack.api("/api/v1/dlq/count", task_name="shop.charge")["matched"] == expected
    page.context.close()


def test_dlq_requeue_from_the_browser_with_operate(stack: Stack, browser: Browser) -> None:
    """An operate login sees the Requeue button of an entry; clicking it requeues the entry
    (it leaves the pending list) and the toast says so."""
    entry = dlq_entry_id(stack)
    page = new_page(browser)
    watch = Watch(page)
    login(page, stack.url, stack.tokens["operate"])
    page.goto(f"{stack.url}/dlq/{quote(entry)}")
    loaded(page)
    shot(page, "dlq-entry")
    button = page.locator("#actions [data-action='requeue']")
    expect(button).to_be_visible()
    expect(page.locator("#actions [data-action='discard']")).to_have_count(0)  # admin only
    button.click()
    expect(page.locator("#toast")).to_contain_text("Requeued")
    wait_for(lambda: stack.api(f"/api/v1/dlq/{quote(entry)}").get("status") != "pending"
             if _exists(stack, entry) else True, 20, 0.2, "the entry requeued")
    watch.assert_clean("requeue")
    page.context.close()


def _exists(stack: Stack, entry: str) -> bool:
    r = httpx.get(f"{stack.url}/api/v1/dlq/{quote(entry)}", timeout=10,
                  headers={"Authorization": f"Bearer {stack.tokens['admin']}"})
    return r.status_code == 200


def test_read_login_has_no_action_buttons_and_a_forged_request_gets_403(
        stack: Stack, browser: Browser) -> None:
    """A read login sees no action button on the DLQ pages, and a requeue forged from its page
    (same origin, with its cookie) is refused with 403."""
    wait_for(lambda: stack.api("/api/v1/dlq/count")["matched"] >= 1, 60, 0.3, "a DLQ entry")
    entry = dlq_entry_id(stack)
    page = new_page(browser)
    login(page, stack.url, stack.tokens["read"])
    page.goto(f"{stack.url}/dlq")
    loaded(page)
    expect(page.locator("tbody tr").first).to_be_visible()
    expect(page.locator("button[data-action]")).to_have_count(0)
    page.goto(f"{stack.url}/dlq/{quote(entry)}")
    loaded(page)
    expect(page.locator("button[data-action]")).to_have_count(0)
    status = page.evaluate(
        "async (id) => (await fetch(`/api/v1/dlq/${encodeURIComponent(id)}/requeue`,"
        " {method: 'POST', credentials: 'same-origin'})).status", entry)
    assert status == 403
    assert _exists(stack, entry)
    page.context.close()


def test_cross_site_post_with_the_session_cookie_is_refused(stack: Stack,
                                                            browser: Browser) -> None:
    """A state-changing request carrying an operate session cookie but coming from another site
    (Origin and Sec-Fetch-Site say so) is refused, whatever the cookie allows."""
    wait_for(lambda: stack.api("/api/v1/dlq/count")["matched"] >= 1, 60, 0.3, "a DLQ entry")
    entry = dlq_entry_id(stack)
    page = new_page(browser)
    login(page, stack.url, stack.tokens["operate"])
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "warden_session" in cookies
    forged = httpx.post(f"{stack.url}/api/v1/dlq/{quote(entry)}/requeue", timeout=10,
                        cookies={"warden_session": cookies["warden_session"]},
                        headers={"Origin": "https://evil.example",
                                 "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"]
    assert _exists(stack, entry)
    page.context.close()


def test_open_reads_show_read_only_views_without_login(stack_factory: Any,
                                                       browser: Browser) -> None:
    """With WARDEN_API_OPEN_READS=true the pages render without signing in, as read-only."""
    s = stack_factory({"WARDEN_API_OPEN_READS": "true"}, worker=False)
    page = new_page(browser)
    watch = Watch(page)
    for path in ("/", "/dlq", "/workers"):
        page.goto(s.url + path)
        loaded(page)
        assert page.url.startswith(s.url + path)
        expect(page.locator("#who-name")).to_have_text("read-only (open)")
        expect(page.locator("button[data-action]")).to_have_count(0)
    watch.assert_clean("open reads")
    page.context.close()
