"""Runs kept in object storage (``s3://bucket/runs``, any fsspec URL), read through a local mirror.

``mirror(url)`` copies the objects under a URL into a folder of tbscope's cache directory and returns that
folder; every read command (``ls``, ``compare``, ``export``, ``du``, ``serve``) then reads the mirror as it
reads any local logdir. A sync lists the prefix with one recursive listing, downloads in parallel only the
objects whose ETag or size changed since the last sync (a manifest in the mirror records them) and deletes the
local copies of objects that are gone.

Credentials come from where the storage's own library looks (for S3: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``~/.aws``); an S3-compatible server's endpoint from ``S3_ENDPOINT`` or
``AWS_ENDPOINT_URL``. ``pip install tbscope[s3]`` installs S3 support; another protocol needs its fsspec package.

Example:
    >>> is_url("s3://bucket/runs"), is_url("runs"), is_url("C:/runs")
    (True, False, False)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from tbscope import cache
from tbscope.atomic import write_text

_MANIFEST = ".tbscope-mirror.json"
_PACKAGES = {"s3": "tbscope[s3] (s3fs)", "s3a": "tbscope[s3] (s3fs)", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs"}  # fmt: skip
_WORKERS = 16


def is_url(text: str) -> bool:
    """Whether ``text`` names object storage (``scheme://...``) rather than a local path."""
    scheme = urllib.parse.urlsplit(text).scheme
    return len(scheme) > 1 and "://" in text


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path inside it; ValueError naming what to install when missing."""
    scheme = urllib.parse.urlsplit(url).scheme
    package = _PACKAGES.get(scheme, f"the fsspec package for {scheme}://")
    try:
        import fsspec
    except ImportError:
        raise ValueError(f"{url}: {scheme}:// needs {package} and fsspec: pip install them") from None
    options: dict[str, Any] = {"skip_instance_cache": True}  # credentials as the environment says now
    endpoint = os.environ.get("S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if scheme in ("s3", "s3a") and endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{url}: {scheme}:// needs {package}: pip install it ({quiet(err)})") from None
    except Exception as err:  # a library that is there but cannot start (pyarrow's HDFS without Java)
        raise ValueError(f"{url}: cannot open {scheme}:// ({quiet(err)})") from None
    return fs, path.rstrip("/")


def mirror_folder(url: str) -> Path:
    """The local folder that mirrors ``url``, under tbscope's cache directory (one per URL)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", url)[-80:]
    return cache.directory("mirror") / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def mirror(url: str) -> Path:
    """Bring the mirror of ``url`` up to date and return its folder; ValueError with a plain message on failure.

    The message names the URL and never a credential.
    """
    fs, root = filesystem(url)
    try:
        fs.invalidate_cache(root)
        listing = fs.find(root, detail=True)
    except Exception as err:  # each storage library raises its own kinds: all mean "cannot list"
        raise ValueError(f"cannot list {url}: {quiet(err)}") from None
    if not listing and not fs.exists(root):
        raise ValueError(f"{url}: nothing there (no such bucket or prefix)")
    folder = mirror_folder(url)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / _MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    wanted: dict[str, str] = {}
    fetch: list[tuple[str, str]] = []
    for path, info in listing.items():
        if info.get("type") == "directory":
            continue
        relative = _relative(path, root)
        if relative is None:
            continue
        version = f"{info.get('ETag') or info.get('etag') or info.get('mtime') or ''}:{info.get('size')}"
        wanted[relative] = version
        if manifest.get(relative) != version or not (folder / relative).is_file():
            fetch.append((path, relative))

    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(exist_ok=True)

    def download(item: tuple[str, str]) -> None:
        remote, relative = item
        local = folder / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        # downloads land beside the mirror, never in it: a half-fetched event file is no event file to read
        partial = staging / f"{os.getpid()}-{threading.get_ident()}-{hashlib.sha256(relative.encode()).hexdigest()}"
        try:
            fs.get_file(remote, str(partial))
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)

    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        for item, error in zip(fetch, pool.map(_attempt(download), fetch), strict=True):
            if error is not None:
                failed.append(item[1])
                wanted.pop(item[1])
    for relative in set(manifest) - set(wanted):
        if relative not in failed:
            (folder / relative).unlink(missing_ok=True)
            for parent in (folder / relative).parents:  # a deleted run leaves no empty folder to list
                if parent == folder or any(parent.iterdir()):
                    break
                parent.rmdir()
    write_text(manifest_path, json.dumps(wanted, sort_keys=True))
    if failed:
        raise ValueError(f"{url}: could not download {len(failed)} object(s), e.g. {failed[0]}")
    return folder


def _attempt(work: Any) -> Any:
    def run(item: Any) -> BaseException | None:
        try:
            work(item)
        except Exception as err:
            return err
        return None

    return run


def _relative(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` as a safe local relative path, or None (outside it, ``..``, the manifest)."""
    if not path.startswith(root + "/"):
        return None
    parts = PurePosixPath(path[len(root) + 1 :]).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or parts == (_MANIFEST,):
        return None
    return "/".join(parts)


def quiet(err: BaseException) -> str:
    """``err`` as one line, with any configured secret key blanked out."""
    text = " ".join(str(err).split()) or type(err).__name__
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text
