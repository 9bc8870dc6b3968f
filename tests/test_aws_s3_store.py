"""The S3 artifact store (moto): the ArtifactStore protocol with sha256 metadata, as the local store behaves."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from safedeploy.aws.clients import AwsClients
from safedeploy.aws.s3_store import S3ArtifactStore
from safedeploy.backends import VerifyingStore
from safedeploy.errors import ArtifactError
from safedeploy.store import S3Uri

BUCKET = "customerchurn-dev-data-123456789012-us-east-1"


def _clients() -> AwsClients:
    return AwsClients(
        boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    )


@pytest.fixture
def store() -> Iterator[S3ArtifactStore]:
    with mock_aws():
        clients = _clients()
        clients.s3.create_bucket(Bucket=BUCKET)
        yield S3ArtifactStore(clients.s3)


def test_it_is_a_verifying_artifact_store(store: S3ArtifactStore) -> None:
    typed: VerifyingStore = store  # mypy checks the protocol
    assert typed is store


def test_put_records_the_sha256_and_reads_check_it(store: S3ArtifactStore, tmp_path: Path) -> None:
    uri = S3Uri(BUCKET, "customerchurn/datasets/abc/train.csv")
    data = b"1,2,3\n4,5,6\n"
    ref = store.put_bytes(uri, data, "text/csv")
    assert (ref.uri, ref.sha256, ref.size, ref.content_type) == (
        str(uri),
        hashlib.sha256(data).hexdigest(),
        12,
        "text/csv",
    )
    head = store.s3.head_object(Bucket=BUCKET, Key=uri.key)
    assert head["Metadata"] == {"sha256": ref.sha256} and head["ContentType"] == "text/csv"
    assert store.get_bytes(uri) == data
    headed = store.head(uri)
    assert headed is not None and headed.sha256 == ref.sha256 and headed.size == 12
    assert store.verify(ref)

    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 64)
    archive = S3Uri(BUCKET, "customerchurn/training-jobs/job/output/model.tar.gz")
    file_ref = store.put_file(archive, source, "application/gzip")
    dest = tmp_path / "out" / "model.tar.gz"
    downloaded = store.download(archive, dest)
    assert dest.read_bytes() == source.read_bytes() and downloaded.sha256 == file_ref.sha256


def test_a_changed_object_fails_its_checksum_and_leaves_the_destination_alone(
    store: S3ArtifactStore, tmp_path: Path
) -> None:
    uri = S3Uri(BUCKET, "customerchurn/model.tar.gz")
    ref = store.put_bytes(uri, b"original")
    store.s3.put_object(Bucket=BUCKET, Key=uri.key, Body=b"tampered", Metadata={"sha256": ref.sha256})
    with pytest.raises(ArtifactError, match="checksum mismatch for s3://"):
        store.get_bytes(uri)
    dest = tmp_path / "model.tar.gz"
    dest.write_bytes(b"before")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        store.download(uri, dest)
    assert dest.read_bytes() == b"before" and list(tmp_path.iterdir()) == [dest]  # no temporary left
    assert not store.verify(ref)


def test_objects_the_pipeline_did_not_write_do_not_exist_for_it(store: S3ArtifactStore, tmp_path: Path) -> None:
    prefix = S3Uri(BUCKET, "customerchurn/raw")
    store.put_bytes(prefix.join("b.csv"), b"b")
    store.put_bytes(prefix.join("a.csv"), b"a")
    store.s3.put_object(Bucket=BUCKET, Key=prefix.join("foreign.csv").key, Body=b"no metadata")
    store.put_bytes(S3Uri(BUCKET, "customerchurn/other/c.csv"), b"c")
    assert [r.uri for r in store.list_objects(prefix)] == [str(prefix.join("a.csv")), str(prefix.join("b.csv"))]
    foreign = prefix.join("foreign.csv")
    assert store.head(foreign) is None and store.head(prefix.join("missing.csv")) is None
    with pytest.raises(ArtifactError, match="has no recorded sha256"):
        store.get_bytes(foreign)
    with pytest.raises(ArtifactError, match="no such artifact"):
        store.download(prefix.join("missing.csv"), tmp_path / "x")
    with pytest.raises(ArtifactError, match="invalid object location"):
        store.put_bytes(S3Uri(BUCKET, ""), b"x")


def test_the_upload_carries_the_checksum_for_s3_to_verify_and_the_kms_key() -> None:
    s3 = _clients().s3
    store = S3ArtifactStore(s3, kms_key_id="alias/customerchurn-dev")
    digest = hashlib.sha256(b"data").digest()
    with Stubber(s3) as stub:
        stub.add_response(
            "put_object",
            {"ETag": '"x"'},
            {
                "Bucket": BUCKET,
                "Key": "k/data.bin",
                "Body": ANY,
                "ContentType": "application/octet-stream",
                "Metadata": {"sha256": digest.hex()},
                "ChecksumSHA256": base64.b64encode(digest).decode(),
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "alias/customerchurn-dev",
            },
        )
        store.put_bytes(S3Uri(BUCKET, "k/data.bin"), b"data")
        stub.add_client_error("put_object", "AccessDenied", "denied by bucket policy", 403)
        with pytest.raises(ArtifactError, match=r"cannot write s3://.*AccessDenied"):
            store.put_bytes(S3Uri(BUCKET, "k/data.bin"), b"data")
        stub.assert_no_pending_responses()
