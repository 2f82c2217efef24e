# pyright: strict
"""The node in n8n's own editor (headless Chromium): the example workflow renders with the
Signoff nodes, the approval's three outputs, its parameters and the credential form.

Also how docs/img/n8n-*.png are made: `SIGNOFF_N8N_SCREENSHOTS=docs/img uv run nox -s n8n --
-k editor` writes the screenshots there (otherwise to a temporary folder). Skipped without
Chromium (/usr/bin/chromium, Debian's package; Playwright never downloads a browser).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integrations.conformance.suite import ARGS
from tests.integrations.n8n.conftest import CREDENTIAL_ID, E2E, ROOT, WORKFLOW_ID

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SHOTS_ENV = "SIGNOFF_N8N_SCREENSHOTS"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: `SIGNOFF_N8N_SCREENSHOTS` (relative to the repo), else a temp dir."""
    target = os.environ.get(SHOTS_ENV)
    folder = (ROOT / target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(e2e: E2E) -> Iterator[Any]:
    """A signed-in editor page (the owner's session cookie), 1440 by 900."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    cookies = [
        {"name": name, "value": value, "url": e2e.n8n.url}
        for name, value in e2e.n8n.rest.cookies.items()
    ]
    with playwright_api.sync_playwright() as playwright:
        playwright.selectors.set_test_id_attribute("data-test-id")  # n8n's attribute
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_cookies(cookies)
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


APPROVAL = '[data-test-id="canvas-node"][data-node-name="Ask finance to approve"]'


def _canvas(page: Any, e2e: E2E, path: str) -> None:
    """Open an editor page showing the workflow; close the first-visit checklist if it shows."""
    page.goto(f"{e2e.n8n.url}{path}")
    page.locator(APPROVAL).wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)  # the checklist pops up a moment after the canvas
    close = page.get_by_test_id("suggested-actions-close")
    if close.count() and close.first.is_visible():
        close.first.click()


def _open_approval(page: Any) -> Any:
    """Double-click the approval node; its details panel (NDV)."""
    page.locator(APPROVAL).dblclick()
    panel = page.get_by_test_id("ndv")
    panel.get_by_test_id("node-parameters").wait_for()
    page.wait_for_timeout(500)
    return panel


def test_editor_shows_the_workflow_with_the_three_outputs(page: Any, e2e: E2E, shots: Path) -> None:
    _canvas(page, e2e, f"/workflow/{WORKFLOW_ID}")
    for label in ("Timed out", "Approved", "Rejected", "Release payment", "Report: paid"):
        assert page.get_by_text(label, exact=True).first.is_visible(), label
    page.screenshot(path=str(shots / "n8n-workflow.png"))


def test_editor_shows_the_approval_parameters(page: Any, e2e: E2E, shots: Path) -> None:
    _canvas(page, e2e, f"/workflow/{WORKFLOW_ID}")
    panel = _open_approval(page)
    for name in ("actionName", "actionArguments", "businessObjectType", "businessObjectId"):
        assert panel.get_by_test_id(f"parameter-input-{name}").count() == 1, name
    page.screenshot(path=str(shots / "n8n-approval-node.png"))
    panel.get_by_test_id("ndv-close-button").click()


def test_editor_shows_the_credential_form(page: Any, e2e: E2E, shots: Path) -> None:
    page.goto(f"{e2e.n8n.url}/home/credentials/{CREDENTIAL_ID}")
    form = page.get_by_role("dialog")
    for label in ("Server URL", "Agent Key", "Webhook Verification Key"):
        form.get_by_text(label).first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "n8n-credential.png"))
    page.keyboard.press("Escape")


def test_editor_shows_an_approved_execution(page: Any, e2e: E2E, shots: Path) -> None:
    _, agent = e2e.use_agent()
    e2e.trigger({**ARGS, "vendor": "Acme GmbH", "purchase_order": "PO-7781"})
    request = e2e.await_request(agent)
    execution_id = request.correlation["n8n_execution_id"]
    e2e.n8n.wait_for_status(execution_id, ["waiting"])
    _canvas(page, e2e, f"/workflow/{WORKFLOW_ID}/executions/{execution_id}")
    page.screenshot(path=str(shots / "n8n-waiting.png"))
    e2e.reviewer.decide(request.id, "approve", comment="matches PO-7781")
    e2e.n8n.wait_for_status(execution_id, ["success"])
    _canvas(page, e2e, f"/workflow/{WORKFLOW_ID}/executions/{execution_id}")
    page.screenshot(path=str(shots / "n8n-approved-execution.png"))
    panel = _open_approval(page)
    panel.get_by_text("Approved Branch (1 item)").wait_for()
    panel.get_by_test_id("ndv-run-data-display-mode").last.get_by_text("JSON").click()
    panel.get_by_text('"matches PO-7781"').first.wait_for()  # the decision on the output item
    page.screenshot(path=str(shots / "n8n-approved-output.png"))
