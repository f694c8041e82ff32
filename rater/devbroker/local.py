"""A real single-node Kafka (KRaft, broker + controller in one JVM) for development and tests.

The broker runs from Kafka's own jars (see :mod:`rater.devbroker.jars`) and is started in
its own process group so it can be stopped as a whole; a pid file in its data directory
(see :mod:`rater.devbroker.state`) lets a later process stop a broker it did not start.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from rater.devbroker.errors import BrokerError
from rater.devbroker.jars import ensure_jars
from rater.devbroker.process import (
    await_ready,
    cluster_id,
    die_with_parent,
    free_port,
    megabytes,
    stop_child,
)
from rater.devbroker.state import clear_state, write_state

__all__ = ["LOG_FILE", "OUT_FILE", "LocalBroker"]

log = logging.getLogger(__name__)

LOG_FILE = "server.log"
OUT_FILE = "broker.out"

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
        self._choose_ports()
        props = self._write_config()
        classpath = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH: Kafka needs a JDK/JRE 17 or newer")
        if not (self.data_dir / "kraft" / "meta.properties").is_file():
            self._format(java, classpath, log4j, props)
        self._launch(self._server_command(java, classpath, log4j, props))
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

    def _choose_ports(self) -> None:
        """The listener and controller ports, chosen on the first start and then kept."""
        if self.port is None:
            self.port = free_port(self._port_wanted)
        if self.controller_port is None:
            self.controller_port = free_port(self._controller_port_wanted)
            if self.controller_port == self.port:
                self.controller_port = free_port()

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
            cluster_id(),
            "-c",
            str(props),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage in {self.data_dir} failed: "
                f"{(proc.stdout + proc.stderr).strip()[-500:]}"
            )

    def _server_command(self, java: str, classpath: str, log4j: str, props: Path) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{min(256, megabytes(self.heap))}m",
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

    def _launch(self, cmd: list[str]) -> None:
        """Run ``cmd`` in its own session (output to OUT_FILE) and record it in the state files."""
        out = (self.data_dir / OUT_FILE).open("ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=None if self.detached else die_with_parent,
                cwd=self.data_dir,
            )
        finally:
            out.close()
        write_state(
            self.data_dir,
            {
                "pid": self._proc.pid,
                "port": self.port,
                "controller_port": self.controller_port,
                "bootstrap": self.bootstrap,
                "data_dir": str(self.data_dir),
            },
        )

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

        def answers() -> bool:
            try:
                return bool(admin.list_topics(timeout=2).brokers)
            except Exception:  # KafkaException while the broker is still coming up
                return False

        await_ready(
            self._proc,
            answers,
            self.startup_timeout_s,
            exited=lambda code: (
                f"the Kafka broker exited with status {code} during startup; "
                f"see {self.log_file} and {self.data_dir / OUT_FILE}"
            ),
            silent=f"the Kafka broker at {self.bootstrap} did not answer within "
            f"{self.startup_timeout_s:.0f}s; see {self.log_file}",
        )

    def _kill(self, grace_s: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        stop_child(proc, grace_s)
        clear_state(self.data_dir)

    def _stop_at_exit(self) -> None:
        if self._proc is not None:
            self._kill(grace_s=10.0)
