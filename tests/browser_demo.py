"""Drive the demo page in headless Chromium (Debian's package, through playwright; no browser download):

    python tests/browser_demo.py URL SCREENSHOT.png /usr/bin/chromium

Loads the page, clicks the first example, presses "Find hands", waits for the overlay image and the 3D viewer's
canvas, and saves a screenshot of the page. Exits non-zero with the reason when a step fails.
"""

import sys

from playwright.sync_api import sync_playwright

# As the machine's probe found: without these, Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
]
TIMEOUT_MS = 120_000


def main(url: str, screenshot: str, executable: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url, timeout=TIMEOUT_MS)
        page.get_by_text("Examples (synthetic hands rendered by the package)").wait_for(timeout=TIMEOUT_MS)
        page.locator(".gallery-item, button.gallery").last.click()
        page.get_by_role("button", name="Find hands").click()
        page.get_by_text("hands found by MediaPipe Hands").wait_for(timeout=TIMEOUT_MS)
        page.locator("#overlay img").wait_for(timeout=TIMEOUT_MS)
        page.locator("#viewer canvas").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_timeout(3000)  # the 3D viewer loads the .glb and draws it
        page.screenshot(path=screenshot, full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
