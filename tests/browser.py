"""Headless Chromium for the dashboard tests (Selenium driving the system's chromedriver: Debian's `chromium` and
`chromium-driver`, which `make chromium` installs), and a small page server of our own on another origin."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from usage_analytics.local.launcher import free_port

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "dashboard"
WIDTH, HEIGHT = 1280, 800
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


def _binary(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    raise RuntimeError(f"none of {', '.join(names)} is installed: run `make chromium`")


def _major(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)\.\d+\.\d+", out)
    return found.group(1) if found else None


def _browser(driver: str) -> str:
    """The installed Chromium or Chrome whose major version is the chromedriver's (Debian pairs chromium with its
    driver; GitHub's runners pair google-chrome with theirs and may have another Chromium beside it)."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    installed = [found for name in names if (found := shutil.which(name))]
    if not installed:
        raise RuntimeError(f"none of {', '.join(names)} is installed: run `make chromium`")
    wanted = _major(driver)
    return next((b for b in installed if wanted and _major(b) == wanted), installed[0])


class Browser:
    """One headless Chromium for a whole test module, its console log collected (`goog:loggingPrefs`)."""

    def __init__(self):
        options = webdriver.ChromeOptions()
        driver = _binary("chromedriver")
        options.binary_location = _browser(driver)
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
            options.add_argument(argument)
        options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(driver))
        metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the viewport, not the window
        self.driver.set_script_timeout(30)
        self.log: list[dict] = []

    def open(self, url: str) -> None:
        """Loads `url` afresh (a new fragment alone would only fire hashchange on the page already open)."""
        self.driver.get("about:blank")
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def run_async(self, body: str, *args):
        """Runs `body`, the body of an async function of `args`, in the page; returns what it returns, and raises
        what it throws."""
        wrapper = (
            "const done = arguments[arguments.length - 1];"
            f"(async (...args) => {{ {body} }})(...Array.from(arguments).slice(0, -1))"
            ".then((value) => done({value}), (e) => done({error: String((e && e.stack) || e)}));"
        )
        answer = self.driver.execute_async_script(wrapper, *args)
        if "error" in answer:
            raise AssertionError(f"in the page: {answer['error']}")
        return answer.get("value")

    def wait(self, condition, timeout: float = 15, message: str = ""):
        """Polls `condition(driver)` until it is truthy; returns its value."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition, message)

    def console(self) -> list[dict]:
        """Every console entry so far (Chromium hands each out once; this keeps them)."""
        self.log += self.driver.get_log("browser")
        return self.log

    def console_errors(self, since: int = 0) -> list[str]:
        return [e["message"] for e in self.console()[since:] if e["level"] == "SEVERE"]

    def screenshot(self, name: str, folder: Path) -> Path:
        """A PNG of the page at 1280x800 into `folder` (docs/screenshots with SCREENSHOTS=1)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def quit(self) -> None:
        self.driver.quit()


def screenshot_folder(tmp: Path) -> Path:
    return ROOT / "docs" / "screenshots" if os.environ.get("SCREENSHOTS") == "1" else tmp


class PageServer:
    """A real HTTP server on a port of its own, so another origin than the API's: serves dashboard/ at
    /dashboard/ and a blank page at /, and answers `POST /v0/events` from a script of answers (status, headers),
    200 once the script runs out, recording what each request carried."""

    def __init__(self):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.pages: dict[str, bytes] = {}  # more HTML pages a test serves, by path
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, script: list[tuple[int, dict]] | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self.script[:] = script or []

    def posts(self, count: int, timeout: float = 15) -> list[dict]:
        """Waits until `count` POSTs have arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} POSTs, got {len(self.requests)}: {self.requests}")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read self.requests
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/":
                    return self._answer(200, b"<!doctype html><title>blank</title><body></body>", "text/html")
                if path in server.pages:
                    return self._answer(200, server.pages[path], "text/html")
                file = (DASHBOARD / path.removeprefix("/dashboard/")).resolve()
                if path.startswith("/dashboard/") and file.is_file() and file.is_relative_to(DASHBOARD.resolve()):
                    return self._answer(200, file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"))
                return self._answer(404, b"not found", "text/plain")

            def do_POST(self):
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                lines = [json.loads(line) for line in body.split("\n") if line]
                record = {"path": parts.path, "query": parse_qs(parts.query), "headers": dict(self.headers)}
                with server.lock:
                    server.requests.append({**record, "rows": lines})
                    status, headers = server.script.pop(0) if server.script else (200, {})
                answer = {"successful_rows": len(lines), "quarantined_rows": 0}
                if status >= 300:
                    answer = {"error": f"scripted {status}"}
                self._answer(status, json.dumps(answer).encode(), "application/json", headers)

            def _answer(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
