"""A small Chrome DevTools Protocol client for Debian's headless Chromium, for the browser tests.

Chromium speaks the protocol over a pipe (`--remote-debugging-pipe`: it reads commands on file
descriptor 3 and writes replies and events on 4, each message JSON ending in a NUL byte), so no
websocket library, driver or downloaded browser is needed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium")


class Chromium:
    """One headless Chromium process; close() ends it (the tests use it as a context manager)."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands_in, self._commands = os.pipe()
        self._replies, replies_out = os.pipe()
        argv = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        # bash puts the pipe ends on the descriptors 3 and 4 Chromium expects, then execs it
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{commands_in} 4>&{replies_out}', "bash", *argv],
            pass_fds=(commands_in, replies_out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_in)
        os.close(replies_out)
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._last_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> None:
        pending = b""
        with os.fdopen(self._replies, "rb", buffering=0) as stream:
            while chunk := stream.read(1 << 16):
                pending += chunk
                while b"\0" in pending:
                    message, pending = pending.split(b"\0", 1)
                    self._inbox.put(json.loads(message))
        self._inbox.put(None)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise TimeoutError(f"chromium did not answer {method}") from None
            if reply is None:
                raise RuntimeError(f"chromium exited during {method}")
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def page(self, width: int, height: int, *, mobile: bool = False, scale: float = 1) -> str:
        """A new tab of the given viewport; returns its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        metrics = {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session)
        self.call("Page.enable", session=session)
        return session

    def open(self, session: str, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session)

    def evaluate(self, session: str, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        result = self.call("Runtime.evaluate", params, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 60.0) -> Any:
        """Poll an expression until it is truthy; its value (TimeoutError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(session, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied: {expression[:200]}")
            time.sleep(0.2)

    def screenshot(self, session: str, path: Path, *, full_page: bool = False) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            width, height = self.evaluate(
                session,
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]",
            )
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", params, session)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
