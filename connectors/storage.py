"""Source storage: open a source root, list its recordings, read its deployment metadata.

A source root is a local folder, a ``file://`` URI or ``s3://bucket/prefix``. Under it, each
first-level folder is one field deployment (one recorder at one site for one period)::

    <root>/deployments.csv            optional metadata, one row per deployment
    <root>/<deployment_id>/.../*.WAV  recordings, any depth below the deployment folder

Reading goes through fsspec (``fs.open``), and an object store is listed with ``fs.find``. A local
root is listed by its own walker, because a local tree can hold what an object store cannot -
symbolic links (followed), link loops and dangling links (reported) - and fsspec's local ``find``
drops every link silently. Either way every path found is accounted for: a recording
(:class:`SourceObject`) or a :class:`SkippedPath` with its reason.
"""

from __future__ import annotations

import csv
import errno
import inspect
import io
import logging
import math
import os
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fsspec
from fsspec.implementations.local import LocalFileSystem

from connectors.errors import ConfigError
from connectors.timeparse import canonical_zone_name

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
"""Recording extensions, matched case-insensitively (AudioMoth writes ``.WAV``)."""

DEPLOYMENTS_FILE = "deployments.csv"
MAX_DEPLOYMENTS_BYTES = 64 * 2**20
"""Largest deployments.csv read (it holds one short row per deployment)."""

# The usual AWS variables and the S3FileSystem argument each one feeds. botocore reads most of
# them itself, but passing them explicitly makes storage_options overrides predictable.
_AWS_ENV_TO_S3FS = {
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "token",
}


def open_root(
    uri: str, storage_options: dict | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Open a source root; return ``(fs, root)`` with ``root`` the path ``fs`` understands.

    ``root`` has no trailing slash; for local roots it is absolute, for S3 it is
    ``bucket/prefix`` (no scheme). S3 credentials and endpoint come from the usual AWS
    environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``), overridden by ``storage_options``.
    The region is left to botocore (``AWS_DEFAULT_REGION``): passing ``us-east-1`` explicitly
    breaks bucket creation on S3-compatible servers.

    Raises ConfigError for an unsupported scheme, an S3 URI without a bucket, or a missing local
    root.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"source URI is empty: {uri!r}")
    uri = uri.strip()
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return _open_local(uri, storage_options)
    scheme = scheme.lower()
    if scheme == "file":
        return _open_local(rest, storage_options)
    if scheme in ("s3", "s3a"):
        return _open_s3(uri, rest, storage_options)
    raise ConfigError(f"source URI {uri!r}: unsupported scheme {scheme!r} (use a local path, file:// or s3://)")


def _open_local(path: str, storage_options: dict | None) -> tuple[fsspec.AbstractFileSystem, str]:
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise ConfigError(f"source root {root} {what}")
    fs = LocalFileSystem(**(storage_options or {}))
    # fsspec's local paths use forward slashes on every platform.
    return fs, fs._strip_protocol(root).rstrip("/") or "/"


def _open_s3(uri: str, rest: str, storage_options: dict | None) -> tuple[fsspec.AbstractFileSystem, str]:
    import s3fs  # only needed for s3:// roots

    bucket_problem(uri, "source")
    root = rest.rstrip("/")
    options: dict[str, Any] = {}
    for env_name, arg in _AWS_ENV_TO_S3FS.items():
        if os.environ.get(env_name):
            options[arg] = os.environ[env_name]
    client_kwargs: dict[str, Any] = {}
    endpoint_url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    user = dict(storage_options or {})
    check_storage_options(user)
    client_kwargs.update(user.pop("client_kwargs", None) or {})
    options.update(user)
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    try:
        fs = s3fs.S3FileSystem(**options)
    except TypeError as exc:
        raise ConfigError(f"source URI {uri!r}: bad storage_options: {exc}") from exc
    return fs, root


def check_storage_options(options: dict[str, Any]) -> None:
    """Refuse storage options s3fs would not use (a mistyped key is silently dropped by fsspec,
    or fails deep inside aiobotocore at the first request): every top-level key must be an
    ``S3FileSystem`` argument, every ``client_kwargs`` key an argument of botocore's
    ``create_client``, every ``config_kwargs`` key a botocore ``Config`` option.

    Raises ConfigError naming the key and the keys that would be understood.
    """

    import botocore.config
    import botocore.session
    import s3fs

    def named(function: Any) -> set[str]:
        return {k for k, p in inspect.signature(function).parameters.items()
                if k != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}

    top = named(s3fs.S3FileSystem.__init__) | {"use_listings_cache", "listings_expiry_time",
                                               "max_paths", "skip_instance_cache"}
    # aiobotocore's create_client takes *args/**kwargs and hands them to botocore's.
    nested = {"client_kwargs": (named(botocore.session.Session.create_client) - {"service_name"}),
              "config_kwargs": set(botocore.config.Config.OPTION_DEFAULTS)}
    for key, value in options.items():
        if key not in top:
            raise ConfigError(f"storage option {key!r}: not an s3fs option (known: "
                              f"{', '.join(sorted(top))})")
        if key in nested and value is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"storage option {key}: expected KEY=VALUE pairs "
                                  f"({key}.NAME=VALUE), got {value!r}")
            for inner in value:
                if inner not in nested[key]:
                    raise ConfigError(f"storage option {key}.{inner}: not a botocore "
                                      f"{'client' if key == 'client_kwargs' else 'Config'} option "
                                      f"(known: {', '.join(sorted(nested[key]))})")


# The characters botocore accepts in a bucket name (AWS itself is stricter; S3-compatible
# stores such as MinIO or Ceph accept what botocore sends).
_BUCKET_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,255}")


def bucket_problem(uri: str, what: str) -> None:
    """ConfigError when the bucket part of ``uri`` (``s3://BUCKET/...``) is empty or not a name
    botocore would send (``s3://s3://b/x`` names the bucket ``s3:``): one line, not a
    ParamValidationError traceback at the first request."""
    bucket = uri.partition("://")[2].split("/", 1)[0]
    if not bucket:
        raise ConfigError(f"{what} URI {uri!r}: no bucket name")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise ConfigError(f"{what} URI {uri!r}: {bucket!r} is not a bucket name (letters, digits, "
                          "'.', '-' and '_' only); write s3://BUCKET/PREFIX")


def check_bucket(fs: fsspec.AbstractFileSystem, uri: str, what: str = "source") -> None:
    """One request to the bucket of ``uri`` (an ``s3://`` URI): ConfigError naming the bucket
    when it does not exist or the credentials are refused, before a run does any work."""
    bucket_problem(uri, what)
    bucket = uri.partition("://")[2].split("/", 1)[0]
    try:
        fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {uri}: bucket {bucket!r} does not exist") from None
    except PermissionError as exc:
        raise ConfigError(f"{what} {uri}: bucket {bucket!r}: access refused ({_first_line(exc)}); "
                          "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {uri}: bucket {bucket!r} cannot be reached: "
                          f"{type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def check_source(uri: str, storage_options: dict | None = None,
                 deployments: Iterable[str] | None = None) -> None:
    """Everything about a source a user can get wrong, checked before a run starts: the root
    (a missing folder, a bucket that does not exist, refused credentials, an unknown storage
    option), ``deployments.csv`` (every read and parse error) and deployment ids that name no
    deployment folder under the root. ConfigError, one line, naming what is wrong."""
    fs, root = open_root(uri, storage_options)
    if "://" in uri and not uri.lower().startswith("file://"):
        check_bucket(fs, uri.strip())
    known = read_deployments(fs, root)
    if deployments:
        try:
            folders = {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)
                       if fs.isdir(p)}
        except OSError as exc:
            raise ConfigError(f"source {uri}: cannot list it: {_first_line(exc)}") from None
        folders.add(posixpath.basename(root.rstrip("/")))  # files directly in the root
        missing = sorted(set(deployments) - folders)
        if missing:
            listed = ", ".join(sorted(folders - {posixpath.basename(root.rstrip('/'))}))
            extra = " (named in deployments.csv but no folder)" if set(missing) & set(known) else ""
            raise ConfigError(f"deployment {', '.join(missing)}: no such folder under {uri}{extra}"
                              f" (folders: {listed or 'none'})")


@dataclass(frozen=True)
class SourceObject:
    """One recording found under a source root."""

    key: str
    """Path relative to the root, forward slashes (``dep1/2023/20231119_210000.WAV``)."""
    uri: str
    """Full URI: ``s3://bucket/prefix/dep1/a.WAV`` or an absolute local path."""
    path: str
    """What ``fs.open`` takes."""
    deployment_id: str
    """First path component under the root; the root's own base name for files directly in it."""
    size_bytes: int
    etag: str | None
    """S3 ETag without quotes; None where the storage has none (local files)."""
    mtime: datetime | None
    """Last modification time, UTC aware; None if the storage does not report one."""

    @property
    def version_tag(self) -> str:
        """ETag if known, else the ISO mtime; with ``size_bytes`` it detects changed files.

        Empty when the storage reports neither, so that only the size can detect a change.
        """
        if self.etag:
            return self.etag
        if self.mtime is not None:
            return self.mtime.isoformat()
        return ""


SKIP_REASONS = (
    "hidden",
    "not_audio",
    "dangling_symlink",
    "symlink_loop",
    "duplicate",
    "empty_deployment_id",
    "not_a_file",
    "unreadable",
    "outside_root",
)
"""Why a listed path is not a recording (:class:`SkippedPath`):

- ``hidden``: a name starting with ``.`` (the ``._name.WAV`` files macOS leaves on SD cards,
  ``.Trashes``); a hidden folder is one entry, its key ending in ``/``, and is not looked into.
- ``not_audio``: an extension outside :data:`AUDIO_EXTENSIONS`; ``detail`` is the extension.
- ``dangling_symlink``: a symbolic link to nothing; ``detail`` is its target.
- ``symlink_loop``: a link to a folder that contains it, or a chain of links that never ends;
  ``detail`` is its target.
- ``duplicate``: the same file as a listed recording, reached through a symlink or a hard link;
  ``detail`` is the key kept (a path without links wins, then the first key).
- ``empty_deployment_id``: the first component under the root is empty (an object key
  ``prefix//a.wav``), so the file belongs to no deployment.
- ``not_a_file``: a device, socket or pipe.
- ``unreadable``: the operating system refused to list or stat it; ``detail`` says why.
- ``outside_root``: listed, but not below the root (the root is itself an object).
"""


@dataclass(frozen=True)
class SkippedPath:
    """A listed path that :func:`list_recordings` did not turn into a recording, and why."""

    key: str
    """Path relative to the root, forward slashes; a folder's key ends with ``/`` (for
    ``outside_root``, the path as listed)."""
    uri: str
    """Full URI or absolute local path, as :attr:`SourceObject.uri`."""
    reason: str
    """One of :data:`SKIP_REASONS`."""
    detail: str = ""
    """What the reason needs to be acted on: the extension, a link's target, the key kept."""
    deployment_id: str | None = None
    """The deployment it would have belonged to; None when there is none (``empty_deployment_id``,
    ``outside_root``)."""


@dataclass(frozen=True)
class Listing:
    """What one listing of a source root found: the recordings and every other path."""

    root_uri: str
    """The root listed: ``s3://bucket/prefix`` or an absolute local path."""
    objects: list[SourceObject]
    """Recordings, sorted by key."""
    skipped: list[SkippedPath]
    """Every other listed path, sorted by key (folders and ``deployments.csv`` are not paths to
    analyse and are not listed here)."""
    deployment_filter: tuple[str, ...] | None = None
    """The deployments kept by :meth:`for_deployments`; None for the whole root."""

    def for_deployments(self, deployment_ids: Iterable[str]) -> Listing:
        """This listing restricted to recordings and skipped paths of ``deployment_ids``."""
        wanted = tuple(sorted(set(deployment_ids)))
        return Listing(
            root_uri=self.root_uri,
            objects=[obj for obj in self.objects if obj.deployment_id in wanted],
            skipped=[path for path in self.skipped if path.deployment_id in wanted],
            deployment_filter=wanted,
        )

    def skipped_counts(self) -> dict[str, int]:
        """``{reason: count}`` of the skipped paths, in :data:`SKIP_REASONS` order."""
        counts = {reason: 0 for reason in SKIP_REASONS}
        for path in self.skipped:
            counts[path.reason] += 1
        return {reason: n for reason, n in counts.items() if n}

    def empty_warning(self) -> str | None:
        """One line for a run to warn with when no recording was found, else None."""
        if self.objects:
            return None
        where = self.root_uri
        if self.deployment_filter is not None:
            where += f" in deployment{'s' if len(self.deployment_filter) != 1 else ''} " + ", ".join(
                self.deployment_filter
            )
        looked_for = f"looked for {', '.join(AUDIO_EXTENSIONS)} files (any case) at any depth"
        if not self.skipped:
            return f"no recordings under {where}: {looked_for}; found no other files"
        counts = ", ".join(f"{n} {reason}" for reason, n in self.skipped_counts().items())
        return f"no recordings under {where}: {looked_for}; skipped {len(self.skipped)} other paths ({counts})"


def list_recordings(fs: fsspec.AbstractFileSystem, root: str) -> Listing:
    """All recordings under ``root`` and every other path found there, with the reason it is not
    one (:data:`SKIP_REASONS`).

    Only files with an :data:`AUDIO_EXTENSIONS` extension (any case) are recordings. On a local
    root, symbolic links to files and to folders are followed (a link's key is its own path, its
    size and mtime its target's), wherever they point; a file reached twice is listed once. An
    object store is read with one recursive listing (``fs.find``), never a request per file;
    keys ending in ``/`` are folder markers and are ignored.
    """
    root = root.rstrip("/") or "/"
    root_name = posixpath.basename(root) or root
    scheme = _uri_scheme(fs)
    if isinstance(fs, LocalFileSystem):
        objects, skipped = _list_local(root, root_name)
    else:
        objects, skipped = _list_find(fs, root, root_name, scheme)
    objects.sort(key=lambda obj: obj.key)
    skipped.sort(key=lambda path: path.key)
    return Listing(root_uri=f"{scheme}{root}", objects=objects, skipped=skipped)


def _deployment_of(key: str, root_name: str) -> str:
    parts = key.split("/")
    return parts[0] if len(parts) > 1 else root_name


def _not_audio_detail(name: str) -> str:
    ext = posixpath.splitext(name)[1]
    return ext if ext else "no extension"


def _list_find(
    fs: fsspec.AbstractFileSystem, root: str, root_name: str, scheme: str
) -> tuple[list[SourceObject], list[SkippedPath]]:
    """Any fsspec filesystem (object stores): one recursive listing, no links to follow."""
    objects: list[SourceObject] = []
    skipped: list[SkippedPath] = []

    def skip(key: str, reason: str, detail: str = "", deployment_id: str | None = None) -> None:
        skipped.append(SkippedPath(key, f"{scheme}{root}/{key}", reason, detail, deployment_id))

    hidden_folders: set[str] = set()
    for path, info in fs.find(root, detail=True).items():
        kind = info.get("type", "file")
        if kind == "directory" or path.endswith("/"):
            continue
        key = _relative_key(path, root)
        if key is None:
            skipped.append(SkippedPath(path, f"{scheme}{path}", "outside_root", f"not below {scheme}{root}"))
            continue
        if key == DEPLOYMENTS_FILE:
            continue
        parts = key.split("/")
        if len(parts) > 1 and not parts[0]:
            skip(key, "empty_deployment_id", "the key has '//' after the root")
            continue
        deployment_id = _deployment_of(key, root_name)
        hidden_at = next((i for i, part in enumerate(parts) if part.startswith(".")), None)
        if hidden_at is not None:
            if hidden_at < len(parts) - 1:  # under a hidden folder: report the folder once
                folder = "/".join(parts[: hidden_at + 1]) + "/"
                if folder not in hidden_folders:
                    hidden_folders.add(folder)
                    skip(folder, "hidden", "folder", deployment_id)
            else:
                skip(key, "hidden", "", deployment_id)
        elif kind != "file":
            skip(key, "not_a_file", str(kind), deployment_id)
        elif not parts[-1].lower().endswith(AUDIO_EXTENSIONS):
            skip(key, "not_audio", _not_audio_detail(parts[-1]), deployment_id)
        else:
            objects.append(
                SourceObject(
                    key=key,
                    uri=f"{scheme}{path}",
                    path=path,
                    deployment_id=deployment_id,
                    size_bytes=int(info.get("size") or 0),
                    etag=_etag(info),
                    mtime=_mtime(info),
                )
            )
    return objects, skipped


def _list_local(root: str, root_name: str) -> tuple[list[SourceObject], list[SkippedPath]]:
    """A local folder tree, following symbolic links; fsspec's ``find`` would drop them (it
    reports a link as type "other" and never descends into a linked folder)."""
    skipped: list[SkippedPath] = []

    def skip(key: str, path: str, reason: str, detail: str = "") -> None:
        skipped.append(SkippedPath(key, path, reason, detail, _deployment_of(key, root_name)))

    # (key, path, stat, reached through a link) of every audio file, deduplicated at the end.
    candidates: list[tuple[str, str, os.stat_result, bool]] = []
    root_stat = os.stat(root)
    # (folder path, its key, (st_dev, st_ino) of it and its ancestors, reached through a link)
    stack: list[tuple[str, str, frozenset[tuple[int, int]], bool]] = [
        (root, "", frozenset({(root_stat.st_dev, root_stat.st_ino)}), False)
    ]
    while stack:
        folder, folder_key, ancestors, folder_via_link = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError as exc:
            skip(f"{folder_key}/" if folder_key else "./", folder + "/", "unreadable", exc.strerror or str(exc))
            continue
        for entry in entries:
            key = f"{folder_key}/{entry.name}" if folder_key else entry.name
            if key == DEPLOYMENTS_FILE:
                continue
            is_link = entry.is_symlink()
            target = _link_target(entry.path) if is_link else ""
            if entry.name.startswith("."):
                if _is_dir(entry):
                    skip(key + "/", entry.path + "/", "hidden", "folder")
                else:
                    skip(key, entry.path, "hidden")
                continue
            try:
                info = os.stat(entry.path)  # follows links
            except FileNotFoundError:
                if is_link:
                    skip(key, entry.path, "dangling_symlink", target)
                else:
                    skip(key, entry.path, "unreadable", "vanished while listing")
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    skip(key, entry.path, "symlink_loop", target)
                else:
                    skip(key, entry.path, "unreadable", exc.strerror or str(exc))
                continue
            via_link = folder_via_link or is_link
            if stat.S_ISDIR(info.st_mode):
                identity = (info.st_dev, info.st_ino)
                if identity in ancestors:
                    skip(key + "/", entry.path + "/", "symlink_loop", target)
                else:
                    stack.append((entry.path, key, ancestors | {identity}, via_link))
                continue
            if not stat.S_ISREG(info.st_mode):
                skip(key, entry.path, "not_a_file")
            elif not entry.name.lower().endswith(AUDIO_EXTENSIONS):
                skip(key, entry.path, "not_audio", _not_audio_detail(entry.name))
            else:
                candidates.append((key, entry.path, info, via_link))

    objects: list[SourceObject] = []
    kept: dict[tuple[int, int], str] = {}
    # A path without links is the file's own name; among equals the first key wins.
    for key, path, info, _ in sorted(candidates, key=lambda c: (c[3], c[0])):
        identity = (info.st_dev, info.st_ino)
        if identity in kept:
            skip(key, path, "duplicate", kept[identity])
            continue
        kept[identity] = key
        objects.append(
            SourceObject(
                key=key,
                uri=path,
                path=path,
                deployment_id=_deployment_of(key, root_name),
                size_bytes=info.st_size,
                etag=None,
                mtime=datetime.fromtimestamp(info.st_mtime, tz=timezone.utc),
            )
        )
    return objects, skipped


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as exc:
        return f"(unreadable link: {exc.strerror})"


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _uri_scheme(fs: fsspec.AbstractFileSystem) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return ""
    # s3fs lists ("s3", "s3a"); the canonical URI uses the first.
    return f"{protocol}://"


def _relative_key(path: str, root: str) -> str | None:
    if root == "/":
        return path.lstrip("/") or None
    if not path.startswith(root + "/"):
        return None
    return path[len(root) + 1 :]


def _etag(info: dict) -> str | None:
    etag = info.get("ETag") or info.get("etag")
    if not etag:
        return None
    return str(etag).strip('"')


def _mtime(info: dict) -> datetime | None:
    # s3fs reports LastModified (a datetime), the local filesystem mtime (epoch seconds); other
    # fsspec backends use the remaining names, sometimes as ISO text.
    for name in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(name)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
    return None


@dataclass(frozen=True)
class Deployment:
    """One row of ``deployments.csv``: one recorder at one site for one period."""

    deployment_id: str
    site_id: str | None = None
    latitude: float | None = None
    """Decimal degrees, WGS84, in [-90, 90]."""
    longitude: float | None = None
    """Decimal degrees, WGS84, in [-180, 180]."""
    recorder: str | None = None
    timezone: str | None = None
    """IANA zone of the site (``Europe/Berlin``): local times, diel analyses, and the clock of
    recorders whose convention is local time (Song Meter names, naive GUANO times)."""
    clock_timezone: str | None = None
    """Zone the recorder's clock was set to, an IANA name or a fixed offset stored as
    ``UTC±hh:mm``; None when not given (the recorder's convention applies, docs/time.md)."""
    start: datetime | None = None
    """Deployment start; aware if the CSV gave an offset or the row has a timezone, else naive."""
    end: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    """Every other column, as text."""
    species_include: tuple[str, ...] | None = None
    """Only these species count as detections here (``species_include``: names separated by
    ``;``, scientific or common, kept lower-case); None = every species."""
    species_exclude: tuple[str, ...] | None = None
    """These species never count as detections here (``species_exclude``, as above)."""


_KNOWN_COLUMNS = (
    "deployment_id", "site_id", "latitude", "longitude", "recorder", "timezone", "clock_timezone", "start", "end",
    "species_include", "species_exclude",
)
#: The columns of deployments.csv the contract defines (docs/source.md); others go to `extra`.
KNOWN_DEPLOYMENT_COLUMNS = _KNOWN_COLUMNS


def read_deployments(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, Deployment]:
    """Read ``<root>/deployments.csv`` into ``{deployment_id: Deployment}``; ``{}`` if absent.

    Column names are matched after stripping spaces and lower-casing. Raises ConfigError naming
    the file, the line and the reason for: no ``deployment_id`` column, an empty or duplicate
    id, a latitude/longitude that is not a number or out of range, a ``timezone`` zoneinfo does
    not know, a ``clock_timezone`` that is neither an IANA name nor ``UTC±hh:mm``, or a
    start/end that is not ISO 8601 (or ends before it starts).
    """
    path = f"{root.rstrip('/')}/{DEPLOYMENTS_FILE}"
    if not fs.exists(path):
        if isinstance(fs, LocalFileSystem) and os.path.islink(path):
            raise ConfigError(f"{path}: a link to nothing ({_link_target(path)})")
        return {}
    if fs.isdir(path):
        raise ConfigError(f"{path}: a folder, expected a CSV file")
    try:
        with fs.open(path, "rb") as handle:
            raw = handle.read(MAX_DEPLOYMENTS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or _first_line(exc)}") from None
    if len(raw) > MAX_DEPLOYMENTS_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_DEPLOYMENTS_BYTES // 2**20} MiB; "
                          "one row per deployment is a few hundred bytes")
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_deployment_rows(reader, path)
    except csv.Error as exc:  # a field over csv's limit, a NUL byte ...
        raise ConfigError(f"{path}, line {reader.line_num}: not readable as CSV: {exc}") from None


def _read_deployment_rows(reader: Any, path: str) -> dict[str, Deployment]:
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"{path}: empty file, expected a header row with deployment_id") from None
    columns = [name.strip().lower() for name in header]
    if "deployment_id" not in columns:
        raise ConfigError(f"{path}, line 1: no deployment_id column (found {', '.join(columns) or 'nothing'})")
    deployments: dict[str, Deployment] = {}
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            raise ConfigError(f"{path}, line {line}: {len(row)} fields but the header has {len(columns)}")
        values = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(columns)}
        deployment = _parse_deployment_row(values, f"{path}, line {line}")
        if deployment.deployment_id in deployments:
            raise ConfigError(
                f"{path}, line {line}: duplicate deployment_id {deployment.deployment_id!r}"
                f" (first on line {first_line[deployment.deployment_id]})"
            )
        deployments[deployment.deployment_id] = deployment
        first_line[deployment.deployment_id] = line
    return deployments


def _parse_deployment_row(values: dict[str, str], where: str) -> Deployment:
    deployment_id = values["deployment_id"]
    if not deployment_id:
        raise ConfigError(f"{where}: empty deployment_id")
    tz_name = values.get("timezone") or None
    tz = None
    if tz_name is not None:
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where}, column timezone: unknown time zone {tz_name!r}"
                " (expected an IANA name such as Europe/Berlin)"
            ) from None
    clock_tz_name = values.get("clock_timezone") or None
    if clock_tz_name is not None:
        try:
            clock_tz_name = canonical_zone_name(clock_tz_name)
        except ValueError as exc:
            raise ConfigError(f"{where}, column clock_timezone: {exc}") from None
    start = _parse_datetime(values.get("start"), tz, "start", where)
    end = _parse_datetime(values.get("end"), tz, "end", where)
    if start is not None and end is not None and (start.tzinfo is None) == (end.tzinfo is None) and end < start:
        raise ConfigError(f"{where}: end {end.isoformat()} is before start {start.isoformat()}")
    return Deployment(
        deployment_id=deployment_id,
        site_id=values.get("site_id") or None,
        latitude=_parse_coordinate(values.get("latitude"), "latitude", 90.0, where),
        longitude=_parse_coordinate(values.get("longitude"), "longitude", 180.0, where),
        recorder=values.get("recorder") or None,
        timezone=tz_name,
        clock_timezone=clock_tz_name,
        start=start,
        end=end,
        extra={name: value for name, value in values.items() if name not in _KNOWN_COLUMNS},
        species_include=_parse_species_list(values.get("species_include"), "species_include", where),
        species_exclude=_parse_species_list(values.get("species_exclude"), "species_exclude", where),
    )


def _parse_species_list(text: str | None, name: str, where: str) -> tuple[str, ...] | None:
    """``"Turdus merula; Common Blackbird"`` -> ("turdus merula", "common blackbird"); None if blank."""
    if not text:
        return None
    names = tuple(" ".join(part.split()).lower() for part in text.split(";"))
    if any(not n for n in names):
        raise ConfigError(f"{where}: {name} {text!r} has an empty name (separate names with ';')")
    return names


def _parse_coordinate(text: str | None, name: str, limit: float, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ConfigError(f"{where}: {name} {text} is outside [-{limit:g}, {limit:g}]")
    return value


def _parse_datetime(text: str | None, tz: ZoneInfo | None, name: str, where: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{where}: {name} {text!r} is not an ISO 8601 date/time") from None
    if value.tzinfo is None and tz is not None:
        value = value.replace(tzinfo=tz)
    return value


def object_version(fs: fsspec.AbstractFileSystem, path: str) -> tuple[int, str]:
    """``(size_bytes, version_tag)`` of one object now, as `list_recordings` saw it at discovery.

    Decoding compares them with what discovery recorded, so a file rewritten in between is
    refused instead of decoded against its stale header.
    """
    info = fs.info(path)
    listed = SourceObject(key="", uri=path, path=path, deployment_id="",
                          size_bytes=int(info.get("size") or 0), etag=_etag(info), mtime=_mtime(info))
    return listed.size_bytes, listed.version_tag


def describe_service(fs: fsspec.AbstractFileSystem) -> str:
    """The storage service behind `fs`, as a failure names it: "S3 at <endpoint>" for object
    storage (the endpoint, never a credential), "local storage" for a folder."""
    if isinstance(fs, LocalFileSystem):
        return "local storage"
    endpoint = (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url") \
        or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    name = "S3" if protocol in ("s3", "s3a") else str(protocol)
    return f"{name} at {endpoint}" if endpoint else name
