"""The screenshot of the attribution-graph viewer in README.md and docs/circuits.md.

It opens a graph page in headless Chromium (Debian's ``chromium``, driven by Playwright from
the dev extras), clicks the most influential feature, pins the logit and the five most
influential features, groups the two strongest of one layer into a supernode and saves the
viewer as a PNG::

    interp transcoder train --model reference --layers all --arch topk --k 16 --expansion 8 \\
        --tokens 100k --batch-size 1024 --ctx-len 64 --lr 3e-3 --out runs/tc
    interp circuit trace --model reference --transcoders runs/tc \\
        --prompt "The war lasted from the year 1745 to the year 17" --target 50 --out graph/
    python analyses/viewer_screenshot.py graph/graph.html docs/images/viewer-greater-than.png
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SETUP = """() => {
  const v = document.querySelector('.iv-viewer').__interpViewer;
  const features = v.g.nodes.filter(n => n.kind === 'feature').sort((a, b) => b.influence - a.influence);
  const logit = v.g.nodes.find(n => n.kind === 'logit');
  [logit, ...features.slice(0, 5)].forEach(n => v.pin(n.id));
  const layer = features[1].layer, pair = features.slice(1, 6).filter(n => n.layer === layer).slice(0, 2);
  if (pair.length === 2) v.group(pair.map(n => n.id), 'L' + layer + ' year features');
  v.click(features[0].id);
  return features[0].id;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="graph.html written by `interp circuit trace`")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1480, help="browser window width in CSS pixels")
    parser.add_argument("--height", type=int, default=820, help="browser window height in CSS pixels")
    parser.add_argument("--scale", type=float, default=1.5, help="device pixels per CSS pixel")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=args.scale)
        page.goto(args.page.resolve().as_uri())
        page.wait_for_selector("[data-viewer-ready='1']")
        clicked = page.evaluate(SETUP)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.locator(".iv-viewer").screenshot(path=str(args.out))
        browser.close()
    print(f"wrote {args.out} (clicked {clicked})")


if __name__ == "__main__":
    main()
