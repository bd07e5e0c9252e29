"""Take the README's screenshot: the Upload page classifying one real spoken word.

    PYTHONPATH=. .venv/bin/python scripts/screenshot.py [WAV] [--out docs/img/upload-result.png]

Serves the shipped model (`models/default`) from a throwaway instance folder on a free loopback
port (as tests/e2e/conftest.py's `serve()` does; nothing in `instance/` or `runs/` is touched),
opens the Upload page in headless Debian Chromium (`/usr/bin/chromium`, through playwright),
uploads WAV (default: a "go" of `../shared/speech/words`), waits until the result card's charts
are drawn and saves a 1200-pixel-wide PNG of the page down to the end of that card. Needs `make test`'s setup
(playwright and chromium).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORD = ROOT.parent / "shared" / "speech" / "words" / "go" / "0fa1e7a9_nohash_0.wav"


def serve(tmp: Path) -> tuple[str, object]:
    """The app with the shipped model on a free port in a thread; returns (url, server)."""
    os.environ.update({"HARK_INSTANCE": str(tmp / "instance"), "HARK_RUNS": str(tmp / "runs"),
                       "HARK_AUTO_TRAIN": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    from werkzeug.serving import make_server

    from webapp import create_app

    app = create_app({"HARK_MODEL": str(ROOT / "models" / "default")})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="?", default=str(WORD), help="the clip to classify")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "upload-result.png"))
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()
    if not Path(args.wav).is_file():
        print(f"{args.wav}: not found (see ../shared/speech/README.md)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        url, server = serve(Path(tmp))
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(url + "/upload")
            page.set_input_files("#file-input", [args.wav])
            page.wait_for_selector(".result[data-charts='drawn']", timeout=60_000)
            page.wait_for_timeout(500)   # Plotly's last transition
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            card = page.locator(".result").first.bounding_box()
            page.screenshot(path=args.out, full_page=True,
                            clip={"x": 0, "y": 0, "width": args.width,
                                  "height": card["y"] + card["height"] + 16})
        finally:
            browser.close()
            server.shutdown()
    print(f"{args.out} ({Path(args.out).stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
