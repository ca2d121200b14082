"""`make screenshots`: the page's two views as PNGs in docs/, from the running demo.

Needs `make run` serving (the proxy at --proxy, SciFact indexed with its policy) and Debian's
chromium + chromium-driver (`make system`). The evaluation view shows --report; without one,
a small `crossrank eval` on 40 SciFact queries (windows 10 and 30) is run through the demo
proxy first (a picture of the page, not a measurement to quote).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from crossrank.devnode.browser import headless_chromium

REPO = Path(__file__).resolve().parents[1]


def full_page(driver, path: Path, width: int = 1280) -> None:  # type: ignore[no-untyped-def]
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(height + 40, 2400))
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="http://127.0.0.1:8080")
    parser.add_argument("--index", default="scifact")
    parser.add_argument("--query", default="statins reduce cardiovascular mortality")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--admin-token", help="the demo's, for the eval policy",
                        default=os.environ.get("CROSSRANK_ADMIN_TOKEN", "demo-admin-token"))
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    report = args.report
    if report is None:
        out = REPO / "reports/eval/ui-screenshot"
        subprocess.run([sys.executable, "-m", "crossrank.cli", "eval", "--dataset",
                        str(REPO / "datasets/scifact"), "--limit", "40", "--window", "10,30",
                        "--proxy", args.proxy, "--admin-token", args.admin_token,
                        "--out", str(out), "--no-progress"], check=True)
        report = out / "report.json"
    driver = headless_chromium(1280, 900)
    try:
        page = f"{args.proxy}/_crossrank/ui/"
        driver.get(page + "#/compare?" + urlencode({"index": args.index, "q": args.query,
                                                   "size": 6}))
        WebDriverWait(driver, 120).until(
            lambda d: d.execute_script("return document.body.dataset.searches"))
        full_page(driver, args.out / "ui_compare.png")
        driver.set_window_size(1280, 900)
        driver.get(page + "#/eval")
        driver.find_element(By.ID, "report-file").send_keys(str(report.resolve()))
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#report svg"))
        full_page(driver, args.out / "ui_eval.png")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
