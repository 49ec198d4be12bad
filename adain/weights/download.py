"""Downloads and their integrity; the fallback to the original release files.

:func:`verify_download` checks Hub cache files against their content ids;
:func:`original_model_dir` downloads the release files once, checks, converts and caches them
(as a ``save_pretrained`` folder written from the converted state dict: no model is built).

While the default Hub repository is not published, the default model is built from the
pytorch-AdaIN v0.0.0 release assets. The URLs come from ``$ADAIN_ORIGINAL_URLS`` when set (tests
serve the files from 127.0.0.1), each optionally carrying pip's ``#sha256=<hex>`` fragment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from adain.weights.folder import WEIGHTS_NAME, sha256_file

ORIGINAL_URLS_ENV = "ADAIN_ORIGINAL_URLS"
CACHE_ENV = "ADAIN_CACHE"
ORIGINAL_FILES = ("vgg_normalised.pth", "decoder.pth")
_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
# No sha256 is pinned for the GitHub assets: none could be measured from this workplace (no
# internet). Structure is always checked by the conversion; the computed sha256 is recorded in
# provenance.json next to the converted model.
DEFAULT_ORIGINAL_URLS = (f"{_RELEASE}/vgg_normalised.pth", f"{_RELEASE}/decoder.pth")
_CHUNK = 1 << 20
_HEX = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def cache_root() -> Path:
    """``$ADAIN_CACHE``, else ``$XDG_CACHE_HOME/adain``, else ``~/.cache/adain``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "adain"


def original_urls() -> dict[str, tuple[str, str | None]]:
    """``{file name: (url, sha256 or None)}`` for the two release files.

    ``$ADAIN_ORIGINAL_URLS`` holds two whitespace- or comma-separated URLs ending in
    ``vgg_normalised.pth`` and ``decoder.pth``, e.g. ``https://host/vgg_normalised.pth#sha256=ab12``.
    """
    value = os.environ.get(ORIGINAL_URLS_ENV)
    urls = value.replace(",", " ").split() if value else list(DEFAULT_ORIGINAL_URLS)
    found: dict[str, tuple[str, str | None]] = {}
    for url in urls:
        address, _, fragment = url.partition("#")
        sha = fragment.removeprefix("sha256=").lower() if fragment.startswith("sha256=") else None
        name = urlsplit(address).path.rsplit("/", 1)[-1]
        if name in ORIGINAL_FILES:
            found[name] = (address, sha)
    if set(found) != set(ORIGINAL_FILES):
        raise ValueError(
            f"${ORIGINAL_URLS_ENV} must hold two URLs ending in {' and '.join(ORIGINAL_FILES)}, "
            f"got {value!r}"
        )
    return found


def converted_dir() -> Path:
    """Where the converted original model is cached; the name follows the URLs it came from."""
    key = hashlib.sha256(json.dumps(original_urls(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / f"original-pytorch-AdaIN-v0.0.0-{key}"


def check_sha256(path: str | Path, expected: str) -> None:
    """Raise ``ValueError`` unless the file's sha256 is ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; refusing to load it"
        )


def verify_download(path: str | Path) -> None:
    """Check a Hub cache file against the id it is stored under (sha256 for LFS, git sha1).

    The client checks sizes only; this catches same-size corruption. A bad blob is deleted so
    the next call downloads it again. Files outside the Hub cache layout are left alone.
    """
    blob = Path(path).resolve()
    if blob.parent.name != "blobs" or not _HEX.match(blob.name):
        return
    if len(blob.name) == 64:
        actual = sha256_file(blob)
    else:
        data = blob.read_bytes()
        actual = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if actual != blob.name:
        blob.unlink()
        raise ValueError(
            f"{path}: content hash {actual} does not match the Hub's {blob.name}; the corrupted "
            "download was removed: run again to download it afresh"
        )


def download_file(url: str, dest: Path, sha256: str | None = None) -> str:
    """Download ``url`` to ``dest`` with a progress bar; return the content's sha256.

    The file appears at ``dest`` only complete and checked: a body shorter than its
    Content-Length or a sha256 mismatch raises ``OSError``/``ValueError`` and leaves nothing.
    """
    from huggingface_hub.utils import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=30) as response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise OSError(f"{url}: download cut short ({received} of {total} bytes); retry")
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ValueError(
                f"{url}: sha256 {actual} does not match the expected {sha256}; refusing the file"
            )
        os.replace(partial, dest)
        return actual
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response's socket
        raise OSError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise OSError(f"{url}: cannot download ({reason})") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def original_model_dir() -> Path:
    """The converted original release as a ``save_pretrained`` folder, downloading it once.

    Raises:
        OSError: a download failed (network, HTTP error, cut short).
        ValueError: a sha256 mismatch, or a file that is not the expected state dict.
    """
    target = converted_dir()
    if (target / WEIGHTS_NAME).is_file():
        return target
    from adain.weights.convert import save_original  # torch: only when converting

    cache_root().mkdir(parents=True, exist_ok=True)
    # A private folder per call, so concurrent first runs never read each other's partial files.
    downloads = Path(tempfile.mkdtemp(prefix=".downloads-", dir=cache_root()))
    try:
        provenance = {}
        for name, (url, sha) in original_urls().items():
            provenance[name] = {"url": url, "sha256": download_file(url, downloads / name, sha)}
        # Structure check: the conversion refuses missing keys and wrong shapes, naming the file.
        vgg, decoder = downloads / "vgg_normalised.pth", downloads / "decoder.pth"
        sources = {entry["url"]: entry["sha256"] for entry in provenance.values()}
        save_original(vgg, decoder, target, overwrite=True, sources=sources)
        (target / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    finally:
        shutil.rmtree(downloads, ignore_errors=True)  # the converted folder is all that is needed
    print(
        f"adain: the default Hub model is not published yet; converted the original "
        f"pytorch-AdaIN release files into {target}",
        file=sys.stderr,
    )
    return target
