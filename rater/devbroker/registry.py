"""A real Confluent-compatible schema registry for development and tests: Apicurio Registry.

Apicurio publishes its application module, not a runnable jar, to Maven Central, so
``registry-pom.xml`` has Quarkus package it into one jar, once, into
``<broker home>/registry`` (rebuilt when the pom changes, like the broker's jars). The
registry keeps its schemas in memory and serves the Confluent API under
``/apis/ccompat/v6``: :attr:`LocalRegistry.url` is what ``RATER_KAFKA__SCHEMA_REGISTRY_URL``
takes. It starts in about 5 seconds and needs no Kafka.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from rater.devbroker.errors import BrokerError
from rater.devbroker.jars import _locked, broker_home
from rater.devbroker.process import await_ready, die_with_parent, free_port, stop_child

__all__ = ["REGISTRY_POM", "LocalRegistry", "ensure_registry_jar"]

log = logging.getLogger(__name__)

REGISTRY_POM = Path(__file__).resolve().parent / "registry-pom.xml"
_JAR = "apicurio-registry-runner.jar"
_CCOMPAT = "/apis/ccompat/v6"


def ensure_registry_jar(home: Path | None = None) -> Path:
    """The registry's runnable jar, built with Maven on first use (about a minute)."""
    root = (home or broker_home()) / "registry"
    jar = root / _JAR
    digest = hashlib.sha256(REGISTRY_POM.read_bytes()).hexdigest()
    stamp = root / ".pom-sha256"
    if jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return jar
    with _locked(root / ".build.lock"):
        if jar.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return jar
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH: it is needed once to build the registry")
        build = root / "build"
        shutil.rmtree(build, ignore_errors=True)
        log.info("building the schema registry's jar into %s", root)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(REGISTRY_POM),
            "package",
            "-DskipDefault=true",
            f"-Drater.registry.target={build}",
            "-Dquarkus.package.type=uber-jar",
            "-Dquarkus.index-dependency.registry.group-id=io.apicurio",
            "-Dquarkus.index-dependency.registry.artifact-id=apicurio-registry-app",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        built = list(build.glob("*-runner.jar"))
        if proc.returncode != 0 or not built:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise BrokerError("mvn could not build the schema registry: " + " | ".join(tail))
        built[0].replace(jar)
        shutil.rmtree(build, ignore_errors=True)
        stamp.write_text(digest)
    return jar


class LocalRegistry:
    """One Apicurio Registry JVM on 127.0.0.1 (in-memory: its schemas die with it)."""

    def __init__(
        self, *, port: int | None = None, heap: str = "256m", startup_timeout_s: float = 120.0
    ) -> None:
        self._port_wanted = port
        self.port: int | None = None
        self.heap = heap
        self.startup_timeout_s = startup_timeout_s
        self.log_file = Path(tempfile.mkstemp(prefix="rater-registry-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL."""
        if self.port is None:
            raise BrokerError("the schema registry has not been started")
        return f"http://127.0.0.1:{self.port}{_CCOMPAT}"

    def start(self) -> LocalRegistry:
        jar = ensure_registry_jar()
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH: the schema registry needs Java 17 or newer")
        self.port = free_port(self._port_wanted)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-XX:TieredStopAtLevel=1",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.http.host=127.0.0.1",
            "-jar",
            str(jar),
        ]
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("schema registry ready at %s", self.url)
        return self

    def _wait_ready(self) -> None:
        def answers() -> bool:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as resp,
            ):
                return bool(resp.status == 200)
            return False

        await_ready(
            self._proc,
            answers,
            self.startup_timeout_s,
            exited=lambda _: f"the schema registry exited during startup; see {self.log_file}",
            silent=f"the schema registry did not answer within {self.startup_timeout_s:.0f}s; "
            f"see {self.log_file}",
        )

    def stop(self, grace_s: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc, grace_s)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
