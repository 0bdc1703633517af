"""Render the README's dashboard screenshots from a real run: the demo (node, flow, drop, wash
ring) with the dashboard open, one SVG per panel into docs/images/.

    python docs/make_screenshots.py [--wait 75]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from marketnode.node.client import address_of_home
from marketnode.node.home.keys import OPERATOR, load_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.tools.demo import run_demo
from marketnode.tui.app import Dashboard
from marketnode.tui.panels import PANELS

IMAGES = Path(__file__).parent / "images"
SIZE = (140, 40)
SCREENSHOT_RATE = 2000
"""Orders/s of the steady flow: a fixed rate rather than a calibrated one, so the pictures
look alike from one machine to the next."""


def shoot(home: Home, wait_s: float) -> None:
    key = load_key_pair(home.keys_path(home.config()) / f"{OPERATOR}.key_secret")
    app = Dashboard(lambda: address_of_home(home), key)

    async def drive() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(wait_s)
            for number, panel, _, _ in PANELS:
                await pilot.press(number)
                await pilot.pause(1.5)
                app.save_screenshot(f"dashboard-{number}-{panel}.svg", path=str(IMAGES))
                print(f"docs/images/dashboard-{number}-{panel}.svg")

    asyncio.run(drive())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=75, help="seconds of trading first")
    options = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        run_demo(
            Path(folder) / "home", 60, rate=SCREENSHOT_RATE,
            watch=lambda home, _why_these_rates: shoot(home, options.wait),
        )  # fmt: skip
