"""A real Prometheus server for the tests: Debian's `prometheus` binary (tools/system-packages.txt),
scraping given targets every second as job ``rater``, with the project's alert rules loaded."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rater.devbroker import free_port

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "prometheus" / "rules"


class LocalPrometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.workdir = workdir
        self.targets = targets
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run `make setup` (Debian package prometheus)"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES / "*.yml")],
                    "scrape_configs": [
                        {"job_name": "rater", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self._proc.poll() is None, f"prometheus exited; see {self.log}"
            assert time.monotonic() < deadline, f"prometheus not ready in 60s; see {self.log}"
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp,
        ):
            return bool(resp.status == 200)
        return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (a list of {metric, value})."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
