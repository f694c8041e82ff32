"""``rater broker start|stop|status``: a background Kafka broker for the demo and development."""

from __future__ import annotations

import argparse
from pathlib import Path

from rater.devbroker.jars import broker_home
from rater.devbroker.local import LocalBroker
from rater.devbroker.state import running_state, stop_from_state
from rater.errors import UsageError
from rater.settings import load_settings

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "broker",
        help="run a local single-node Kafka broker",
        description="Start, stop or inspect a local Kafka broker (KRaft, one node) that runs "
        "in the background from Kafka's jars (fetched with Maven on first use).",
    )
    actions = parser.add_subparsers(dest="broker_action", metavar="ACTION", required=True)
    for name, handler, text in (
        ("start", _start, "start a broker in the background and print its bootstrap address"),
        ("stop", _stop, "stop the broker"),
        ("status", _status, "print whether the broker runs (exit 0) or not (exit 1)"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="broker data and state directory (env RATER_BROKER__DIR, "
            "default <broker home>/run; broker home is env RATER_BROKER__HOME or .cache/kafka)",
        )
        if name == "start":
            p.add_argument(
                "--port",
                type=int,
                default=None,
                help="listener port (env RATER_BROKER__PORT, default 9092; "
                "a free port when it is taken or 0)",
            )
        p.set_defaults(func=handler)


def _default_dir() -> Path:
    return load_settings().broker.dir or broker_home() / "run"


def _start(args: argparse.Namespace) -> int:
    data_dir = (args.dir or _default_dir()).resolve()
    port = args.port if args.port is not None else load_settings().broker.port
    if not 0 <= port < 65536:
        raise UsageError(f"--port must be between 0 (any free port) and 65535, not {port}")
    state = running_state(data_dir)
    if state is not None:
        print(state["bootstrap"])
        return 0
    broker = LocalBroker(data_dir, port=port or None, detached=True)
    broker.start()
    print(broker.bootstrap)
    return 0


def _stop(args: argparse.Namespace) -> int:
    data_dir = (args.dir or _default_dir()).resolve()
    if stop_from_state(data_dir):
        print(f"stopped the broker in {data_dir}")
    else:
        print(f"no broker running in {data_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    data_dir = (args.dir or _default_dir()).resolve()
    state = running_state(data_dir)
    if state is not None:
        print(f"running pid={state['pid']} bootstrap={state['bootstrap']} dir={data_dir}")
        return 0
    print(f"not running (dir={data_dir})")
    return 1
