"""What a run sends, from its flags: the checked config and every stage's request bodies.

Synthetic inputs of exact lengths need the served model's tokenizer. With neither ``--tokenizer``
nor ``--dataset``, it comes from the server itself (``GET /v1/tokenizer``): its files go into a
temporary directory, load from there, and are gone once the bodies are built, so
``locust -f loadtests/scrolls.py --host URL`` needs nothing else.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from profiler.client import ServerCallError, ServerClient
from profiler.errors import ConfigError
from profiler.loadgen.config import LoadConfig, config_from_options
from profiler.loadgen.payloads import StagePayload, build_payloads


@dataclass(frozen=True)
class Prepared:
    """A run's config and its bodies per input length."""

    config: LoadConfig
    payloads: dict[int, StagePayload]


@contextmanager
def served_tokenizer(host: str | None) -> Iterator[Path]:
    """The server's tokenizer files in a temporary directory, removed on exit.

    Raises:
        ConfigError: no host, the server cannot be reached, or it does not serve its tokenizer.
    """
    if not host:
        raise ConfigError(
            "no --host: synthetic inputs are cut with the served model's tokenizer, fetched from the "
            "server; pass --host http://HOST:PORT (or --tokenizer DIR, or --dataset FILE to send text)."
        )
    try:
        with ServerClient(host) as client:
            files = client.tokenizer()
    except ServerCallError as exc:
        raise ConfigError(
            f"--host {host}: could not fetch the served model's tokenizer ({exc}); start `profiler "
            "serve` there, or pass --tokenizer DIR (the served model's checkpoint or artifact directory)."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="loadgen-tokenizer-") as directory:
        files.write(Path(directory))
        yield Path(directory)


def prepare(options: argparse.Namespace, host: str | None) -> Prepared:
    """Check the flags and build every stage's bodies (seconds: it loads a tokenizer).

    Raises:
        ConfigError: a flag, file or the server's tokenizer is unusable (one line per problem).
    """
    config = config_from_options(options)
    if not config.tokenizer_from_server:
        return Prepared(config, build_payloads(config))
    with served_tokenizer(host) as directory:
        return Prepared(config, build_payloads(config, directory))
