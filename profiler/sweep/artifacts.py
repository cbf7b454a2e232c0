"""The export cache every run under one output directory shares: ``<output_dir>/.artifacts/``.

A sweep exports a checkpoint once per format, precision and bucket set, not once per run: each
export is stored under a key of everything it is made from (the checkpoint's content hash, the
format, the precision and its parity bound, the buckets and batch sizes, ``allow_new_weights``, and
the exporter: this profiler's version, the manifest schema, torch and transformers) and a later run
with the same key serves it as it is.
:func:`exporters.export.export` builds beside the target and renames into place, so an export
that was killed leaves nothing under its key; one found there is still checked before it is used
(manifest readable, every file at its recorded size, parity run and passed, source hash, buckets
and versions as keyed) and exported again, replacing it, when any check fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from profiler import __version__
from profiler.artifact import SCHEMA_VERSION, ArtifactError, Manifest, Precision, variant

if TYPE_CHECKING:
    from exporters.progress import ExportProgress

#: The cache's folder under a config's ``output_dir``.
CACHE_NAME = ".artifacts"
#: Packages whose version changes what an export holds.
EXPORTER_PACKAGES = ("torch", "transformers")


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def exporter_versions() -> dict[str, str]:
    """What made an export besides its inputs: a change to any of these exports again."""
    return {
        "profiler": __version__,
        "manifest_schema": str(SCHEMA_VERSION),
        **{package: _installed(package) for package in EXPORTER_PACKAGES},
    }


@dataclass(frozen=True)
class ExportKey:
    """Everything an export is made from; equal keys make interchangeable exports."""

    format: str
    precision: str
    #: Reduced precision's parity bound as asked; None: the default (fp32: identical tokens).
    min_token_agreement: float | None
    source_sha256: str
    buckets: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    allow_new_weights: bool
    exporter: tuple[tuple[str, str], ...]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def stale_reason(directory: Path, key: ExportKey) -> str | None:
    """Why the export in ``directory`` cannot serve for ``key``; None when it can."""
    try:
        manifest = Manifest.read(directory)
    except ArtifactError as exc:
        return str(exc)
    versions = dict(key.exporter)
    checks = [
        (manifest.source_sha256 == key.source_sha256, "made from another checkpoint (source sha256 differs)"),
        (
            (manifest.format, manifest.precision, tuple(manifest.buckets), tuple(manifest.batch_sizes))
            == (key.format, key.precision, key.buckets, key.batch_sizes),
            "another format, precision, buckets or batch sizes",
        ),
        (
            not manifest.parity_skipped and bool(manifest.parity) and all(c.passed for c in manifest.parity),
            "its parity check was skipped or failed",
        ),
        (
            all(manifest.versions.get(package) == versions[package] for package in EXPORTER_PACKAGES),
            "made by other package versions",
        ),
    ]
    for name, size in manifest.file_sizes.items():
        path = directory / name
        checks.append(
            (
                path.is_file() and path.stat().st_size == size,
                f"{name} is missing or not the size the manifest records",
            )
        )
    return next((why for passed, why in checks if not passed), None)


@dataclass(frozen=True)
class ArtifactCache:
    """Exports under ``root``, each in ``<model>-<format>-<key digest>``."""

    root: Path
    log: Callable[[str], None]

    def get(
        self,
        name: str,
        checkpoint: Path,
        fmt: str,
        buckets: Sequence[int],
        batch_sizes: Sequence[int],
        allow_new_weights: bool,
        progress: ExportProgress | None = None,
        precision: Precision = "fp32",
        min_token_agreement: float | None = None,
    ) -> Path:
        """The export of ``checkpoint`` in ``precision`` for this key: the cached one if it is
        sound, else a new one (``progress`` hears of its steps)."""
        from exporters.export import checkpoint_sha256, export  # torch: only when exporting

        key = ExportKey(
            format=fmt,
            precision=precision,
            min_token_agreement=min_token_agreement if precision != "fp32" else None,
            source_sha256=checkpoint_sha256(checkpoint),
            buckets=tuple(sorted(set(buckets))),
            batch_sizes=tuple(sorted(set(batch_sizes))),
            allow_new_weights=allow_new_weights,
            exporter=tuple(sorted(exporter_versions().items())),
        )
        label = variant(fmt, precision)
        out = self.root / f"{name}-{label.replace(' ', '-')}-{key.digest()}"
        why = stale_reason(out, key) if out.exists() else "not in the cache"
        if why is None:
            self.log(
                f"reusing the {label} export of {name} from {out} (same checkpoint sha256 "
                f"{key.source_sha256[:12]}, buckets {list(key.buckets)}, batch sizes "
                f"{list(key.batch_sizes)}, exporter versions)"
            )
            return out
        self.log(
            f"exporting {name} to {label} (buckets {list(key.buckets)}, parity at batch "
            f"{' and '.join(map(str, key.batch_sizes))}) into {out}: {why}"
        )
        export(
            checkpoint,
            fmt,
            out,
            lengths=key.buckets,
            batch_sizes=key.batch_sizes,
            overwrite=True,
            allow_new_weights=allow_new_weights,
            progress=progress,
            precision=precision,
            min_token_agreement=key.min_token_agreement,
        )
        return out
