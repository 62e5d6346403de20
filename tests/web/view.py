"""The web view of `weir serve` in a real browser (Debian's Chromium, headless,
driven by Playwright): run by tests/it/serve_web.rs against a service it
started, serving the product-reviews agent with a scripted model server.

It opens the page, gives it the service's token, submits reviews through the
API (one carrying markup meant to run), waits for their runs to appear, opens
one and sees its tree (the action, its model calls with prompt and reply, the
output), checks the markup was shown as text and never ran, filters the runs,
and takes a screenshot.

Environment: WEIR_URL, WEIR_TOKEN, WEIR_AGENT, CHROMIUM (the browser's
path), SCREENSHOT (where the PNG goes). Exits non-zero on the first failed
check, saying which.
"""

import json
import os
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

URL = os.environ["WEIR_URL"]
TOKEN = os.environ["WEIR_TOKEN"]
AGENT = os.environ["WEIR_AGENT"]
CHROMIUM = os.environ["CHROMIUM"]
SCREENSHOT = os.environ["SCREENSHOT"]

MARKUP = '<img src=x onerror="window.pwned=1">'
# Chromium fetches nothing of its own: every request the test sees is the page's.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def submit(event):
    """Submits one event through the API, waiting for its run to end."""
    request = urllib.request.Request(
        f"{URL}/v1/agents/{AGENT}/events?wait=20",
        data=json.dumps(event).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert answer["runs"][0]["status"] == "done", answer
    return answer["ids"][0]


def check(what, condition):
    if not condition:
        sys.exit(f"web view: {what}")
    print(f"ok: {what}")


def main():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        problems = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # The first requests, before the token, are refused: Chromium logs that.
        page.on(
            "console",
            lambda message: message.type == "error"
            and "status of 401" not in message.text
            and problems.append(f"console: {message.text}"),
        )
        elsewhere = []
        page.on("request", lambda request: request.url.startswith(URL) or elsewhere.append(request.url))

        response = page.goto(URL + "/")
        headers = response.headers
        check("the page is served with a strict policy", "script-src 'self'" in headers.get("content-security-policy", ""))
        check("the page is not sniffed", headers.get("x-content-type-options") == "nosniff")

        # The service has a token: the page asks for it.
        expect(page.locator("#token-form")).to_be_visible()
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        agent = page.locator(f'.agent[data-agent="{AGENT}"]')
        expect(agent).to_be_visible()
        expect(agent.locator(".actions")).to_contain_text("analyze")
        expect(agent.locator(".actions")).to_contain_text("suggest")
        check("the agent and its actions are listed", True)

        # Reviews submitted through the API, while the page watches.
        first = submit({"key": "p1", "payload": {"review_id": "r1", "review": "Great battery, light."}})
        expect(page.locator(f'tr.run[data-id="{first}"]')).to_be_visible()
        check("a submitted run appears in the list", True)
        hostile = submit({"key": "p1", "payload": {"review_id": "r2", "review": f"{MARKUP} Screen cracked in a week."}})
        third = submit({"key": "p1", "payload": {"review_id": "r3", "review": "Does the job."}})
        failing = submit({"key": MARKUP, "payload": {"review_id": "r4", "review": "Meh."}})
        for run in (hostile, third, failing):
            expect(page.locator(f'tr.run[data-id="{run}"]')).to_be_visible()
        expect(page.locator(f'tr.run[data-id="{failing}"] .badge')).to_have_text("failed")
        expect(page.locator(f'tr.run[data-id="{third}"] .badge')).to_have_text("done")
        check("the runs are listed with their status", True)
        expect(agent.locator(".counter b").first).to_have_text("4")
        check("the counters count them", True)

        # The hostile run's tree: the action, its model calls, the output.
        page.click(f'tr.run[data-id="{hostile}"]')
        detail = page.locator(f'tr.detail[data-detail="{hostile}"]')
        expect(detail.locator("li.action").first).to_contain_text("analyze")
        expect(detail.locator("li.call").first).to_contain_text("review-model")
        expect(detail.locator("li.call").first).to_contain_text("tokens in")
        detail.locator("li.call summary", has_text="prompt").first.click()
        expect(detail.locator("li.call").first).to_contain_text("On a scale of 1 to 5")
        detail.locator("li.call summary", has_text="reply").first.click()
        expect(detail).to_contain_text("_output_event")
        expect(detail).to_contain_text("review_analysis")
        check("a run expands into its tree: action, calls with prompt and reply, output", True)
        text = detail.inner_text()
        check("markup in a payload is shown as text", MARKUP in text)
        check("markup in a model's reply is shown as text", "<script>window.pwned=2</script>" in text)
        check("the markup never ran", page.evaluate("typeof window.pwned") == "undefined")
        check("no element came from data", page.locator("main img, main script, main b:has-text('battery')").count() == 0)

        # The failed run says why.
        page.click(f'tr.run[data-id="{failing}"]')
        failed = page.locator(f'tr.detail[data-detail="{failing}"]')
        expect(failed.locator("li.call .error-text").first).to_contain_text("500")
        expect(failed).to_contain_text("_error_event")
        check("a failed run shows its error", True)
        check("a key with markup is text", page.locator(f'tr.run[data-id="{failing}"] td.cell-key').inner_text() == MARKUP)

        # Filters: by status, then by key.
        page.select_option("#filter-status", "failed")
        expect(page.locator("tr.run")).to_have_count(1)
        expect(page.locator(f'tr.run[data-id="{failing}"]')).to_be_visible()
        page.select_option("#filter-status", "")
        page.fill("#filter-key", "p1")
        expect(page.locator("tr.run")).to_have_count(3)
        page.fill("#filter-type", "no_such_type")
        expect(page.locator("tr.run")).to_have_count(0)
        page.fill("#filter-type", "")
        page.fill("#filter-key", "")
        expect(page.locator("tr.run")).to_have_count(4)
        check("runs filter by status, key and type", True)

        # For the screenshot: the run that asked for suggestions, opened.
        page.click(f'tr.run[data-id="{failing}"]')
        page.click(f'tr.run[data-id="{hostile}"]')
        page.click(f'tr.run[data-id="{third}"]')
        tree = page.locator(f'tr.detail[data-detail="{third}"]')
        expect(tree.locator("li.action", has_text="suggest").first).to_be_visible()
        tree.locator("li.call summary", has_text="prompt").first.click()
        tree.locator("li.call summary", has_text="reply").last.click()
        expect(page.locator("#token-form")).to_be_hidden()
        page.screenshot(path=SCREENSHOT, full_page=True)
        check("a screenshot is taken", os.path.getsize(SCREENSHOT) > 0)

        check("no page errors: " + "; ".join(problems), not problems)
        check("nothing was fetched from elsewhere: " + ", ".join(elsewhere), not elsewhere)
        browser.close()


if __name__ == "__main__":
    main()
