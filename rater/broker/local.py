"""A real single-node Kafka (KRaft, broker + controller in one JVM) for development and tests.

The broker runs from Kafka's own jars, resolved once by Maven into a cache directory, and is
started in its own process group so it can be stopped as a whole; a pid file in its data
directory lets a later process stop a broker it did not start.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from rater.errors import TerminalError

__all__ = [
    "BrokerError",
    "LocalBroker",
    "broker_home",
    "ensure_jars",
    "free_port",
    "read_state",
    "running_state",
    "stop_from_state",
]

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent / "pom.xml"
STATE_FILE = "broker.json"
PID_FILE = "broker.pid"
LOG_FILE = "server.log"
OUT_FILE = "broker.out"
_PR_SET_PDEATHSIG = 1


class BrokerError(TerminalError):
    """The local broker could not be prepared, started or stopped."""


def broker_home() -> Path:
    """Cache root for jars and the default run dir: $RATER_BROKER_HOME or <repo>/.cache/kafka."""
    env = os.environ.get("RATER_BROKER_HOME")
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "kafka"
    return Path.home() / ".cache" / "rater" / "kafka"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_jars(home: Path | None = None) -> Path:
    """The directory of the broker's jars, resolving them with Maven on first use.

    The jars are re-resolved when pom.xml changes (its digest is kept next to them).
    """
    home = home or broker_home()
    libs = home / "libs"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    stamp = libs / ".pom-sha256"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return libs
    with _locked(home / ".libs.lock"):
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch Kafka's jars")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("resolving Kafka jars into %s", libs)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise BrokerError("mvn could not fetch Kafka's jars: " + " | ".join(tail))
        (staging / ".pom-sha256").write_text(digest)
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it can be bound on 127.0.0.1, else a free ephemeral port."""
    if preferred:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 bytes, unpadded, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel SIGTERMs the JVM if this process dies.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a Kafka JVM using ``data_dir`` (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(data_dir / "server.properties").encode() in cmdline


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it after ``grace_s``."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    log.warning("broker pid %d did not stop in %.0fs; killing it", pid, grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The state a broker started in ``data_dir`` recorded, or None."""
    try:
        state: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state


def running_state(data_dir: Path) -> dict[str, Any] | None:
    """The recorded state of the broker in ``data_dir`` if it is running, else None."""
    state = read_state(data_dir)
    if state is None:
        return None
    pid = int(state["pid"])
    return state if _pid_alive(pid) and _is_our_broker(pid, data_dir) else None


def stop_from_state(data_dir: Path, grace_s: float = 30.0) -> bool:
    """Stop the broker recorded in ``data_dir``; False when none was running."""
    state = read_state(data_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    running = _pid_alive(pid) and _is_our_broker(pid, data_dir)
    if running:
        _terminate(pid, grace_s)
    for name in (STATE_FILE, PID_FILE):
        (data_dir / name).unlink(missing_ok=True)
    return running


_LOG4J = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class LocalBroker:
    """One Kafka broker+controller on 127.0.0.1.

    ``data_dir`` holds the configuration, the log segments and the broker logs; when not given
    a temporary one is made (and removed by :meth:`stop` unless ``keep_data``). Ports are
    chosen once (``port`` or a free one) and reused by :meth:`restart`. ``detached`` leaves the
    broker running when this process exits (for ``rater broker start``).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "768m",
        startup_timeout_s: float = 120.0,
        detached: bool = False,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="rater-kafka-")) if data_dir is None else data_dir
        ).resolve()
        self._port_wanted = port
        self._controller_port_wanted = controller_port
        self.port: int | None = None
        self.controller_port: int | None = None
        self.heap = heap
        self.startup_timeout_s = startup_timeout_s
        self.detached = detached
        self.extra_config = dict(extra_config or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- public API -----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalBroker:
        """Start the broker (formatting its storage on first start) and wait until it serves."""
        if self.is_running():
            return self
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self._port_wanted)
        if self.controller_port is None:
            self.controller_port = free_port(self._controller_port_wanted)
            if self.controller_port == self.port:
                self.controller_port = free_port()
        props = self._write_config()
        classpath = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH: Kafka needs a JDK/JRE 17 or newer")
        if not (self.data_dir / "kraft" / "meta.properties").is_file():
            self._format(java, classpath, log4j, props)
        cmd = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{min(256, _megabytes(self.heap))}m",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir}",
            log4j,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        out = (self.data_dir / OUT_FILE).open("ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if self.detached else _die_with_parent,
                cwd=self.data_dir,
            )
        finally:
            out.close()
        (self.data_dir / PID_FILE).write_text(f"{self._proc.pid}\n")
        (self.data_dir / STATE_FILE).write_text(
            json.dumps(
                {
                    "pid": self._proc.pid,
                    "port": self.port,
                    "controller_port": self.controller_port,
                    "bootstrap": self.bootstrap,
                    "data_dir": str(self.data_dir),
                }
            )
        )
        if not self.detached and not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise
        log.info("Kafka broker ready at %s (data in %s)", self.bootstrap, self.data_dir)
        return self

    def stop(self, *, keep_data: bool = False, grace_s: float = 30.0) -> None:
        """Stop the broker; a temporary data dir is removed unless ``keep_data``."""
        self._kill(grace_s)
        if self._owns_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, grace_s: float = 30.0) -> LocalBroker:
        """Stop and start again on the same data dir and ports (data is kept)."""
        self._kill(grace_s)
        return self.start()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Keep the data dir (and its logs) when leaving on an error, for the post-mortem.
        self.stop(keep_data=exc_type is not None)

    # -- internals ------------------------------------------------------------------------

    def _write_config(self) -> Path:
        assert self.port is not None and self.controller_port is not None
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(20 * 1024 * 1024),
            "replica.fetch.max.bytes": str(20 * 1024 * 1024),
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.hours": "-1",
            "log.retention.bytes": "-1",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.flush.interval.messages": str(2**62),
            "transaction.remove.expired.transaction.cleanup.interval.ms": "3600000",
        }
        config.update(self.extra_config)
        props = self.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file))
        return props

    def _format(self, java: str, classpath: str, log4j: str, props: Path) -> None:
        cmd = [
            java,
            "-Xmx256m",
            log4j,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(props),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage in {self.data_dir} failed: "
                f"{(proc.stdout + proc.stderr).strip()[-500:]}"
            )

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc is not None else None
                raise BrokerError(
                    f"the Kafka broker exited with status {code} during startup; "
                    f"see {self.log_file} and {self.data_dir / OUT_FILE}"
                )
            try:
                md = admin.list_topics(timeout=2)
            except Exception:  # KafkaException while the broker is still coming up
                md = None
            if md is not None and md.brokers:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker at {self.bootstrap} did not answer within "
                    f"{self.startup_timeout_s:.0f}s; see {self.log_file}"
                )
            time.sleep(0.2)

    def _kill(self, grace_s: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _terminate(proc.pid, grace_s)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for name in (STATE_FILE, PID_FILE):
            (self.data_dir / name).unlink(missing_ok=True)

    def _stop_at_exit(self) -> None:
        if self._proc is not None:
            self._kill(grace_s=10.0)


def _megabytes(heap: str) -> int:
    unit = heap[-1].lower()
    value = int(heap[:-1]) if unit in "kmg" else int(heap)
    return {"k": value // 1024, "m": value, "g": value * 1024}.get(unit, value // (1 << 20))
