"""Print botocore's presigned S3 PUT URL for fixed inputs and a fixed clock.

The reference the catalog's SigV4 presigner is checked against
(components/catalog/core/tests/presign_matches_botocore.rs, through
scripts/botocore-presign.sh, which runs this in a venv with a pinned
botocore). Input: one JSON object on stdin with endpoint, bucket, key,
region, access_key_id, secret_access_key, content_type, content_length,
now (Unix seconds) and expires_secs. Output: the URL.
"""
import datetime
import json
import sys
from unittest import mock

import botocore.auth
import botocore.session
from botocore.config import Config

inputs = json.load(sys.stdin)
fixed = datetime.datetime.fromtimestamp(inputs["now"], tz=datetime.timezone.utc)
client = botocore.session.get_session().create_client(
    "s3",
    region_name=inputs["region"],
    endpoint_url=inputs["endpoint"],
    aws_access_key_id=inputs["access_key_id"],
    aws_secret_access_key=inputs["secret_access_key"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
with mock.patch.object(botocore.auth, "get_current_datetime", return_value=fixed):
    url = client.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": inputs["bucket"],
            "Key": inputs["key"],
            "ContentType": inputs["content_type"],
            "ContentLength": inputs["content_length"],
        },
        ExpiresIn=inputs["expires_secs"],
    )
print(url)
