"""Kafka's jars for the local broker, resolved once by Maven (pom.xml) into a cache directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from rater.devbroker.errors import BrokerError

__all__ = ["POM", "broker_home", "ensure_jars"]

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parent / "pom.xml"


def broker_home() -> Path:
    """Cache root for jars and the default run dir: the setting ``broker.home``
    (RATER_BROKER__HOME), else <repo>/.cache/kafka."""
    from rater.settings import load_settings

    home = load_settings().broker.home
    if home is not None:
        return home.expanduser().resolve()
    # This file is <repo>/rater/devbroker/jars.py.
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


def _resolve(mvn: str, staging: Path) -> None:
    """Copy the runtime dependencies of pom.xml into ``staging`` with Maven."""
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
        _resolve(mvn, staging)
        (staging / ".pom-sha256").write_text(digest)
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs
