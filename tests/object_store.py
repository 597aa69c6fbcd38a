"""A real S3 server for the tests: moto's server mode (``moto_server``), started on a free port of
this machine and stopped at the end; every test gets a bucket of its own.

Plain helpers: the fixtures in ``tests/conftest.py`` wrap them.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from tests.processes import BIN, Process, _base_env, free_port

ACCESS_KEY = "lifetime-test-access-key"
SECRET_KEY = "lifetime-test-secret-key"
REGION = "us-east-1"


class S3Server(Process):
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)], _base_env({}))

    def wait_ready(self, *, timeout_s: float = 30.0) -> S3Server:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"the S3 server exited:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"the S3 server did not start in {timeout_s} s:\n{self.log()[-3000:]}")

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"lifetime-artifacts-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def storage_options(server: S3Server, bucket: str, *, prefix: str = "artifacts") -> dict[str, Any]:
    """``STORAGES["artifacts"]`` as lifetime.settings builds it from the ARTIFACT_S3_* variables."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            "location": prefix,
            "endpoint_url": server.url,
            "region_name": REGION,
            "addressing_style": "path",
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "verify": None,
        },
    }


def process_env(server: S3Server, bucket: str, *, prefix: str = "artifacts") -> dict[str, str]:
    """The same store for a process started by a test (stage worker, web), through its variables."""
    return {
        "ARTIFACT_S3_BUCKET": bucket,
        "ARTIFACT_S3_PREFIX": prefix,
        "ARTIFACT_S3_ENDPOINT_URL": server.url,
        "ARTIFACT_S3_REGION": REGION,
        "ARTIFACT_S3_ADDRESSING_STYLE": "path",
        "ARTIFACT_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "ARTIFACT_S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }
