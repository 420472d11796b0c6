"""Upload files to Cloud Storage with google-cloud-storage, each upload's checksum verified.

  python -m trainer.staging dist/trainer-0.1.0.tar.gz gs://BUCKET/packages/
  python -m trainer.staging mnist/train-images-idx3-ubyte ... gs://BUCKET/data/mnist/

Every file goes up with its CRC32C, which Cloud Storage checks on arrival, and afterwards the
object's stored CRC32C (and MD5, when the object has one) is read back and compared with the
local file's: a file that changed while uploading, or an upload that went wrong on the way,
fails loudly instead of leaving a bad package or shard in the bucket. A destination ending in
/ is a folder (files keep their names); otherwise it names the one object to write.

Exit status: 0 uploaded and verified; 2 bad arguments or missing files; 1 the upload failed or
a checksum differs. Credentials are Application Default Credentials.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROG = "trainer.staging"
CHUNK_BYTES = 1 << 20


class StagingError(RuntimeError):
    """An upload that failed or could not be verified; the message says which and why."""


@dataclass(frozen=True)
class Checksums:
    crc32c: str  # base64 of the big-endian CRC32C, as Cloud Storage reports it
    md5: str  # base64 of the MD5 digest


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """(bucket, object name or prefix) of a gs:// URI."""
    if not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"not a gs:// URI: {uri}")
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


def object_names(sources: Sequence[str], prefix: str) -> list[str]:
    """Object name of each source: under a folder prefix, or the one name given."""
    if not prefix or prefix.endswith("/"):
        return [prefix + Path(source).name for source in sources]
    if len(sources) > 1:
        raise ValueError(f"{len(sources)} files need a destination folder ending in /")
    return [prefix]


def local_checksums(path: str) -> Checksums:
    import google_crc32c

    crc = google_crc32c.Checksum()
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            crc.update(chunk)
            md5.update(chunk)
    return Checksums(
        crc32c=base64.b64encode(crc.digest()).decode(),
        md5=base64.b64encode(md5.digest()).decode(),
    )


def verify(blob: Any, path: str) -> Checksums:
    """Read the stored object's checksums back and compare them with the local file's."""
    blob.reload()
    local = local_checksums(path)
    uri = f"gs://{blob.bucket.name}/{blob.name}"
    if blob.crc32c != local.crc32c:
        raise StagingError(
            f"{uri}: CRC32C {blob.crc32c} differs from {path}'s {local.crc32c}; upload again"
        )
    if blob.md5_hash and blob.md5_hash != local.md5:
        raise StagingError(f"{uri}: MD5 {blob.md5_hash} differs from {path}'s {local.md5}")
    return local


def _data_corruption() -> type[Exception]:
    """The checksum-mismatch error of the installed google-cloud-storage (2.x or 3.x)."""
    try:
        from google.cloud.storage.exceptions import DataCorruption
    except ImportError:
        from google.resumable_media import DataCorruption
    return DataCorruption


def upload(client: Any, path: str, bucket: str, name: str) -> str:
    """Upload one file and verify it; returns its gs:// URI."""
    blob = client.bucket(bucket).blob(name)
    try:
        blob.upload_from_filename(path, checksum="crc32c")
    except _data_corruption() as err:
        raise StagingError(f"gs://{bucket}/{name}: corrupted on upload: {err}") from err
    verify(blob, path)
    return f"gs://{bucket}/{name}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Upload files to gs:// and verify their checksums."
    )
    p.add_argument("sources", nargs="+", help="local files")
    p.add_argument("destination", help="gs://BUCKET/folder/ or gs://BUCKET/object")
    p.add_argument("--project", help="project billed for the requests (default: from ADC)")
    return p


def _fail(status: int, message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = [s for s in args.sources if not Path(s).is_file()]
    if missing:
        return _fail(2, f"no such file: {', '.join(missing)}")
    try:
        bucket, prefix = parse_gs_uri(args.destination)
        names = object_names(args.sources, prefix)
    except ValueError as err:
        return _fail(2, str(err))
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import storage

    try:
        client = storage.Client(project=args.project)
        for source, name in zip(args.sources, names, strict=True):
            print(f"uploaded {upload(client, source, bucket, name)} (checksums verified)")
    except StagingError as err:
        return _fail(1, str(err))
    except auth_exceptions.DefaultCredentialsError:
        return _fail(1, "no Google Cloud credentials: run gcloud auth application-default login")
    except exceptions.GoogleAPICallError as err:
        return _fail(1, f"gs://{bucket}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
