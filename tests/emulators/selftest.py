#!/usr/bin/env python3
"""Proves objstore.py (the COS / OSS emulator) right with the vendors' own
SDK clients, and its signature check with the vendors' worked examples.

    target/test-servers/venv/bin/python tests/emulators/selftest.py

For each vendor it starts the emulator (a free port, a temp dir) and drives
it with the official client: qcloud_cos.CosS3Client, alibabacloud_oss_v2.
Client.  Put, get, ranged get, head, paged listing, a 3-part multipart
upload and its failure modes, abort, the paged listing of unfinished
uploads, delete, presigned GETs (fresh and expired), and clients with a
wrong secret or access key.  Then the worked
examples of plugins/objstore/VENDOR-NOTES.md go through the emulator's
verifier at a fixed "now", with tampered and expired variants.

One line per check; the last line is "N passed, N failed"; exit status 0
only if nothing failed.
"""

import contextlib
import datetime
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import alibabacloud_oss_v2 as oss
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import objstore  # noqa: E402  (found beside this file)

ACCESS_KEY = "redback-test"
SECRET_KEY = "redback-test-secret-0123456789abcdef"
BUCKET = "backups-1250000000"
REGION = {"cos": "ap-guangzhou", "oss": "cn-hangzhou"}
MIN_PART = {"cos": 1 << 20, "oss": 100 << 10}


class Results:
    """Counts checks and prints one line each."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}: {detail}")

    def equal(self, name, actual, expected):
        self.check(name, actual == expected, f"got {actual!r}, expected {expected!r}")

    @contextlib.contextmanager
    def section(self, name):
        """A group of checks; an exception inside fails the group, not the run."""
        try:
            yield
        except Exception:
            self.check(f"{name}: ran to the end", False, traceback.format_exc())


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def fetch(url, headers=None):
    """A plain urllib GET: (status, body)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def error_code(body):
    """The <Code> of an XML error body."""
    try:
        return ET.fromstring(body).findtext("Code")
    except ET.ParseError:
        return None


# --------------------------------------------------------------------------
# The emulator as a process


class Emulator:
    """objstore.py on a free port with its own temp dir; a context manager."""

    def __init__(self, vendor):
        self.vendor = vendor
        self.tmp = tempfile.TemporaryDirectory(prefix=f"emulator-{vendor}-")
        self.log_path = os.path.join(self.tmp.name, "emulator.log")

    def __enter__(self):
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "objstore.py"), "--vendor", self.vendor, "--port", "0"]
                + ["--root", os.path.join(self.tmp.name, "data"), "--bucket", BUCKET, "--region", REGION[self.vendor]]
                + ["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.__exit__()
            raise RuntimeError(f"the {self.vendor} emulator did not start: {line!r}\n{self.log()}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()
        self.proc.stdout.close()
        self.tmp.cleanup()

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def url(self, key):
        return f"http://127.0.0.1:{self.port}/{urllib.request.quote(key)}"


# --------------------------------------------------------------------------
# The SDK clients behind one interface


class CosClient:
    """qcloud_cos.CosS3Client against the emulator."""

    def __init__(self, port, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        conf = CosConfig(
            Region=REGION["cos"], SecretId=access_key, SecretKey=secret_key, Scheme="http", Domain=f"127.0.0.1:{port}"
        )
        self.sdk = CosS3Client(conf, retry=0)

    @staticmethod
    def etag(md5):
        return f'"{md5}"'

    def put(self, key, data):
        return self.sdk.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"]

    def get(self, key, range_header=None):
        extra = {"Range": range_header} if range_header else {}
        r = self.sdk.get_object(Bucket=BUCKET, Key=key, **extra)
        return r["Body"].get_raw_stream().read(), r.get("Content-Range")

    def head(self, key):
        r = self.sdk.head_object(Bucket=BUCKET, Key=key)
        return int(r["Content-Length"]), r["ETag"]

    def list_page(self, prefix, delimiter, marker, max_keys):
        r = self.sdk.list_objects(
            Bucket=BUCKET, Prefix=prefix, Delimiter=delimiter, Marker=marker or "", MaxKeys=max_keys
        )
        keys = [c["Key"] for c in r.get("Contents", [])]
        prefixes = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        return keys, prefixes, r.get("NextMarker") if r["IsTruncated"] == "true" else None

    def create_upload(self, key):
        return self.sdk.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

    def upload_part(self, key, upload_id, number, data):
        return self.sdk.upload_part(Bucket=BUCKET, Key=key, Body=data, PartNumber=number, UploadId=upload_id)["ETag"]

    def complete(self, key, upload_id, parts):
        listed = {"Part": [{"PartNumber": n, "ETag": e} for n, e in parts]}
        return self.sdk.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload=listed)[
            "ETag"
        ]

    def abort(self, key, upload_id):
        self.sdk.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)

    def list_uploads(self, prefix, key_marker, id_marker, max_uploads):
        """One page: ([(key, upload id)], (next key marker, next id marker) or None)."""
        r = self.sdk.list_multipart_uploads(
            Bucket=BUCKET, Prefix=prefix, KeyMarker=key_marker, UploadIdMarker=id_marker, MaxUploads=max_uploads
        )
        uploads = [(u["Key"], u["UploadId"]) for u in r.get("Upload", [])]
        return uploads, (r["NextKeyMarker"], r["NextUploadIdMarker"]) if r["IsTruncated"] == "true" else None

    def delete(self, key):
        self.sdk.delete_object(Bucket=BUCKET, Key=key)

    def presign_get(self, key, seconds):
        return self.sdk.get_presigned_url(Bucket=BUCKET, Key=key, Method="GET", Expired=seconds)

    @staticmethod
    def error(call):
        """(HTTP status, error code) of a call that fails, None if it works."""
        try:
            call()
        except CosServiceError as e:
            return e.get_status_code(), e.get_error_code()
        return None


class OssClient:
    """alibabacloud_oss_v2.Client against the emulator: a CNAME-style
    endpoint (the bucket is the host; "localhost", since for an IP address
    the SDK switches to path style), signing /<bucket>/<key> all the same."""

    def __init__(self, port, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(access_key, secret_key)
        cfg.region = REGION["oss"]
        cfg.endpoint = f"http://localhost:{port}"
        cfg.use_cname = True
        cfg.retry_max_attempts = 1
        self.sdk = oss.Client(cfg)

    @staticmethod
    def etag(md5):
        return f'"{md5.upper()}"'

    def put(self, key, data):
        return self.sdk.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data)).etag

    def get(self, key, range_header=None, range_behavior=None):
        r = self.sdk.get_object(
            oss.GetObjectRequest(bucket=BUCKET, key=key, range_header=range_header, range_behavior=range_behavior)
        )
        return r.body.read(), r.content_range

    def head(self, key):
        r = self.sdk.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
        return r.content_length, r.etag

    def list_page(self, prefix, delimiter, marker, max_keys):
        r = self.sdk.list_objects_v2(
            oss.ListObjectsV2Request(
                bucket=BUCKET, prefix=prefix, delimiter=delimiter or None, continuation_token=marker, max_keys=max_keys
            )
        )
        keys = [o.key for o in r.contents or []]
        prefixes = [p.prefix for p in r.common_prefixes or []]
        if r.key_count != len(keys) + len(prefixes):
            raise AssertionError(f"KeyCount {r.key_count} for {len(keys)} keys and {len(prefixes)} prefixes")
        return keys, prefixes, r.next_continuation_token if r.is_truncated else None

    def create_upload(self, key):
        return self.sdk.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key)).upload_id

    def upload_part(self, key, upload_id, number, data):
        request = oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=upload_id, part_number=number, body=data)
        return self.sdk.upload_part(request).etag

    def complete(self, key, upload_id, parts):
        listed = oss.CompleteMultipartUpload(parts=[oss.UploadPart(part_number=n, etag=e) for n, e in parts])
        request = oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key=key, upload_id=upload_id, complete_multipart_upload=listed
        )
        return self.sdk.complete_multipart_upload(request).etag

    def abort(self, key, upload_id):
        self.sdk.abort_multipart_upload(oss.AbortMultipartUploadRequest(bucket=BUCKET, key=key, upload_id=upload_id))

    def list_uploads(self, prefix, key_marker, id_marker, max_uploads):
        """One page: ([(key, upload id)], (next key marker, next id marker) or None)."""
        r = self.sdk.list_multipart_uploads(
            oss.ListMultipartUploadsRequest(
                bucket=BUCKET,
                prefix=prefix,
                key_marker=key_marker or None,
                upload_id_marker=id_marker or None,
                max_uploads=max_uploads,
            )
        )
        uploads = [(u.key, u.upload_id) for u in r.uploads or []]
        return uploads, (r.next_key_marker, r.next_upload_id_marker) if r.is_truncated else None

    def delete(self, key):
        self.sdk.delete_object(oss.DeleteObjectRequest(bucket=BUCKET, key=key))

    def presign_get(self, key, seconds):
        request = oss.GetObjectRequest(bucket=BUCKET, key=key)
        return self.sdk.presign(request, expires=datetime.timedelta(seconds=seconds)).url

    @staticmethod
    def error(call):
        """(HTTP status, error code) of a call that fails, None if it works."""
        try:
            call()
        except oss.exceptions.OperationError as e:
            inner = e.unwrap()
            if isinstance(inner, oss.exceptions.ServiceError):
                return inner.status_code, inner.code
            raise
        return None


CLIENTS = {"cos": CosClient, "oss": OssClient}


# --------------------------------------------------------------------------
# Live checks, the same for both vendors


def check_objects(r, v, client):
    data = b"hello, object storage"
    key = "dir/hello world.txt"
    r.equal(f"{v}: put returns the quoted md5 as ETag", client.put(key, data), client.etag(md5_hex(data)))
    r.equal(f"{v}: get returns the object", client.get(key)[0], data)
    r.equal(f"{v}: ranged get bytes=2-5", client.get(key, "bytes=2-5"), (data[2:6], f"bytes 2-5/{len(data)}"))
    r.equal(
        f"{v}: ranged get bytes=7-", client.get(key, "bytes=7-"), (data[7:], f"bytes 7-{len(data) - 1}/{len(data)}")
    )
    r.equal(f"{v}: head gives size and ETag", client.head(key), (len(data), client.etag(md5_hex(data))))
    r.equal(f"{v}: head of a missing key is 404", (client.error(lambda: client.head("nope")) or (0,))[0], 404)
    r.equal(f"{v}: get of a missing key is 404 NoSuchKey", client.error(lambda: client.get("nope")), (404, "NoSuchKey"))
    # The OSS SDK's HTTP stack (urllib3) drops ".." segments from the path
    # it sends, after signing the key with them: only COS's SDK can send one.
    odd_keys = ["odd/dir/", "odd/ü ?&=+%#.txt"] + (["odd/../up"] if v == "cos" else [])
    for odd in odd_keys:
        client.put(odd, odd.encode())
        r.equal(f"{v}: key {odd!r} round-trips", client.get(odd)[0], odd.encode())
    big = os.urandom(24 << 20)
    client.put("big.bin", big)
    r.equal(f"{v}: a 24 MiB object round-trips", md5_hex(client.get("big.bin")[0]), md5_hex(big))
    client.delete(key)
    r.equal(f"{v}: deleted key is gone", (client.error(lambda: client.head(key)) or (0,))[0], 404)
    r.equal(f"{v}: deleting a missing key succeeds", client.error(lambda: client.delete(key)), None)


def list_all(client, prefix, delimiter, max_keys):
    """Pages through a listing: (keys, common prefixes, page count)."""
    keys, prefixes, marker, pages = [], [], None, 0
    while True:
        page_keys, page_prefixes, marker = client.list_page(prefix, delimiter, marker, max_keys)
        keys += page_keys
        prefixes += page_prefixes
        pages += 1
        if marker is None or pages > 20:
            return keys, prefixes, pages


def check_listing(r, v, client):
    names = ["list/a", "list/b b", "list/c+%&?.txt", "list/ü/1", "list/ü/2", "list/z", "listing-not"]
    for name in reversed(names):
        client.put(name, b"x")
    flat = sorted(n for n in names if n.startswith("list/"))
    r.equal(f"{v}: paged listing, max-keys 2", list_all(client, "list/", "", 2), (flat, [], 3))
    r.equal(f"{v}: paged listing, a marker with + % & ?", list_all(client, "list/", "", 3), (flat, [], 2))
    grouped = (["list/a", "list/b b", "list/c+%&?.txt", "list/z"], ["list/ü/"])
    r.equal(f"{v}: paged listing with delimiter /", list_all(client, "list/", "/", 2), grouped + (3,))
    r.equal(f"{v}: a common prefix ending a page is not repeated", list_all(client, "list/", "/", 1), grouped + (5,))
    r.equal(f"{v}: listing in one page", list_all(client, "list/", "", 1000), (flat, [], 1))


def check_multipart(r, v, client):
    size = MIN_PART[v]
    parts = [os.urandom(size), os.urandom(size), os.urandom(1234)]
    key = "mpu/three parts.bin"
    upload = client.create_upload(key)
    etags = [client.upload_part(key, upload, n, p) for n, p in enumerate(parts, 1)]
    r.equal(f"{v}: part ETags are their md5", etags, [client.etag(md5_hex(p)) for p in parts])
    expected = objstore.md5_etag_of_parts([md5_hex(p) for p in parts], v == "oss")
    r.equal(f"{v}: complete of 3 parts", client.complete(key, upload, list(enumerate(etags, 1))), expected)
    r.equal(f"{v}: the completed object is the parts", client.get(key)[0], b"".join(parts))
    r.equal(f"{v}: completed upload is gone", client.error(lambda: client.abort(key, upload)), (404, "NoSuchUpload"))

    upload = client.create_upload(key)
    small = [client.upload_part(key, upload, n, bytes([n]) * 1000) for n in (1, 2)]
    r.equal(
        f"{v}: parts under the minimum are EntityTooSmall",
        client.error(lambda: client.complete(key, upload, list(enumerate(small, 1)))),
        (400, "EntityTooSmall"),
    )
    r.equal(
        f"{v}: an unknown part is InvalidPart",
        client.error(lambda: client.complete(key, upload, [(1, small[0]), (3, small[1])])),
        (400, "InvalidPart"),
    )
    r.equal(
        f"{v}: parts out of order are InvalidPartOrder",
        client.error(lambda: client.complete(key, upload, [(2, small[1]), (1, small[0])])),
        (400, "InvalidPartOrder"),
    )
    r.equal(
        f"{v}: a wrong part ETag is InvalidPart",
        client.error(lambda: client.complete(key, upload, [(1, small[1])])),
        (400, "InvalidPart"),
    )
    client.abort(key, upload)
    r.equal(
        f"{v}: upload part after abort is NoSuchUpload",
        client.error(lambda: client.upload_part(key, upload, 3, b"late")),
        (404, "NoSuchUpload"),
    )
    r.equal(f"{v}: abort twice is NoSuchUpload", client.error(lambda: client.abort(key, upload)), (404, "NoSuchUpload"))
    r.equal(
        f"{v}: complete of an unknown upload is NoSuchUpload",
        client.error(lambda: client.complete(key, "0" * 32, [(1, small[0])])),
        (404, "NoSuchUpload"),
    )
    r.equal(f"{v}: the object survives the failed uploads", client.get(key)[0], b"".join(parts))


def list_all_uploads(client, prefix, max_uploads):
    """Pages through ListMultipartUploads: ([(key, upload id)], page count)."""
    uploads, marker, pages = [], ("", ""), 0
    while True:
        page, marker = client.list_uploads(prefix, *marker, max_uploads)
        uploads += page
        pages += 1
        if marker is None or pages > 20:
            return uploads, pages


def check_upload_listing(r, v, client):
    keys = ["lmu/k", "lmu/k", "lmu/k", "lmu/k.sha256", "lmu/ü +&.bin", "lmv/other"]
    started = [(key, client.create_upload(key)) for key in keys]
    under = sorted(u for u in started if u[0].startswith("lmu/"))
    r.equal(f"{v}: unfinished uploads listed by key, then id", list_all_uploads(client, "lmu/", 1000), (under, 1))
    r.equal(f"{v}: uploads listed 2 a page, with key and id markers", list_all_uploads(client, "lmu/", 2), (under, 3))
    of_k = [u for u in under if u[0].startswith("lmu/k")]
    r.equal(f"{v}: a key as prefix lists its longer keys too", list_all_uploads(client, "lmu/k", 1), (of_k, 4))
    client.abort(*under[0])
    r.equal(f"{v}: an aborted upload is no longer listed", list_all_uploads(client, "lmu/", 1000), (under[1:], 1))
    key, upload = under[1]
    etag = client.upload_part(key, upload, 1, b"last")
    client.complete(key, upload, [(1, etag)])
    r.equal(f"{v}: a completed upload is no longer listed", list_all_uploads(client, "lmu/", 1000), (under[2:], 1))
    for u in under[2:] + [u for u in started if not u[0].startswith("lmu/")]:
        client.abort(*u)
    r.equal(f"{v}: no unfinished upload left", list_all_uploads(client, "lm", 1000), ([], 1))


def check_auth(r, v, client, emulator):
    key = "auth/presigned me.txt"
    client.put(key, b"presigned body")
    url = client.presign_get(key, 60)
    r.equal(f"{v}: presigned GET works", fetch(url), (200, b"presigned body"))
    status, body = fetch(url[:-1] + ("0" if url[-1] != "0" else "1"))
    r.equal(
        f"{v}: tampered presigned URL is SignatureDoesNotMatch",
        (status, error_code(body)),
        (403, "SignatureDoesNotMatch"),
    )
    r.check(
        f"{v}: SignatureDoesNotMatch carries StringToSign", b"<StringToSign>" in body, body.decode(errors="replace")
    )
    status, body = fetch(emulator.url(key))
    r.equal(f"{v}: unsigned GET is AccessDenied", (status, error_code(body)), (403, "AccessDenied"))
    short = client.presign_get(key, 1)
    time.sleep(2)
    status, body = fetch(short)
    r.equal(f"{v}: presigned GET after expiry is AccessDenied", (status, error_code(body)), (403, "AccessDenied"))
    r.check(f"{v}: ... because it has expired", b"expired" in body, body.decode(errors="replace"))
    wrong = CLIENTS[v](emulator.port, secret_key="not-the-secret")
    r.equal(
        f"{v}: wrong secret is SignatureDoesNotMatch",
        wrong.error(lambda: wrong.put("x", b"x")),
        (403, "SignatureDoesNotMatch"),
    )
    stranger = CLIENTS[v](emulator.port, access_key="someone-else")
    r.equal(
        f"{v}: unknown access key is InvalidAccessKeyId",
        stranger.error(lambda: stranger.get(key)),
        (403, "InvalidAccessKeyId"),
    )
    log = emulator.log()
    r.check(f"{v}: the log tells why requests failed", "SignatureDoesNotMatch" in log and "expired" in log, log[-2000:])
    r.check(f"{v}: the log never shows the secret", SECRET_KEY not in log, "secret in log")


def check_cos_only(r, client, emulator):
    client.put("cos/range.txt", b"0123456789")
    r.equal(
        "cos: unsatisfiable range is 416 InvalidRange",
        client.error(lambda: client.get("cos/range.txt", "bytes=20-30")),
        (416, "InvalidRange"),
    )
    # The SDK signs the host without the port; another host must not pass.
    auth = client.sdk.get_auth(Method="GET", Bucket=BUCKET, Key="cos/range.txt", Headers={"Host": "elsewhere.example"})
    status, body = fetch(emulator.url("cos/range.txt"), {"Authorization": auth})
    r.equal(
        "cos: a signature over another host is rejected", (status, error_code(body)), (403, "SignatureDoesNotMatch")
    )
    auth = client.sdk.get_auth(
        Method="GET", Bucket=BUCKET, Key="cos/range.txt", Headers={"Host": f"127.0.0.1:{emulator.port}"}
    )
    r.equal(
        "cos: a signature over host:port passes",
        fetch(emulator.url("cos/range.txt"), {"Authorization": auth}),
        (200, b"0123456789"),
    )


def check_oss_only(r, client):
    data = b"0123456789"
    client.put("oss/range.txt", data)
    get = lambda rng, behavior=None: client.get("oss/range.txt", rng, behavior)  # noqa: E731
    r.equal("oss: a range past the end is ignored", get("bytes=20-30"), (data, None))
    r.equal("oss: an end past the object is ignored", get("bytes=2-30"), (data, None))
    r.equal("oss: standard range behavior clamps the end", get("bytes=2-30", "standard"), (data[2:], "bytes 2-9/10"))
    r.equal(
        "oss: standard range behavior: start past the end is 416",
        client.error(lambda: get("bytes=20-30", "standard")),
        (416, "InvalidRange"),
    )


def run_live(r, vendor):
    with Emulator(vendor) as emulator:
        client = CLIENTS[vendor](emulator.port)
        for name, check in [
            ("objects", lambda: check_objects(r, vendor, client)),
            ("listing", lambda: check_listing(r, vendor, client)),
            ("multipart", lambda: check_multipart(r, vendor, client)),
            ("upload listing", lambda: check_upload_listing(r, vendor, client)),
            ("auth", lambda: check_auth(r, vendor, client, emulator)),
            ("vendor", lambda: check_cos_only(r, client, emulator) if vendor == "cos" else check_oss_only(r, client)),
        ]:
            with r.section(f"{vendor}: {name}"):
                check()
        if r.failed:
            print(f"--- {vendor} emulator log (tail) ---\n{emulator.log()[-6000:]}")


# --------------------------------------------------------------------------
# The vendors' worked examples (VENDOR-NOTES.md section 1.2 and 2.2)


def signed(method, path, query, headers):
    return objstore.SignedRequest(method, path, query, list(headers))


def verdict(auth, req, now):
    """None if `auth` accepts `req` at `now`, else the error code."""
    try:
        auth.check(req, now)
    except objstore.ServiceError as e:
        return e.code
    return None


COS_AK = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
COS_SK = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
COS_HOST = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"
COS_PATH = "/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)"


def cos_authorization(key_time, headers, params, signature):
    return (
        f"q-sign-algorithm=sha1&q-ak={COS_AK}&q-sign-time={key_time}&q-key-time={key_time}"
        f"&q-header-list={headers}&q-url-param-list={params}&q-signature={signature}"
    )


def check_cos_vectors(r):
    auth = objstore.CosAuth(COS_AK, COS_SK, "ap-beijing")
    put_headers = [
        ("Host", COS_HOST),
        ("Content-Type", "text/plain"),
        ("Content-Length", "13"),
        ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
        ("x-cos-acl", "private"),
        ("x-cos-grant-read", 'uin="100000000011"'),
    ]
    put_time, put_now = "1557989151;1557996351", 1557989151 + 100
    cos1 = signed(
        "PUT",
        COS_PATH,
        "",
        [("Date", "Thu, 16 May 2019 06:45:51 GMT")]
        + put_headers
        + [
            (
                "Authorization",
                cos_authorization(
                    put_time,
                    "content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read",
                    "",
                    "3b8851a11a569213c17ba8fa7dcf2abec6935172",
                ),
            )
        ],
    )
    r.equal("COS-1 (PUT, doc) verifies", verdict(auth, cos1, put_now), None)
    tampered = signed("PUT", COS_PATH, "", [(k, "public-read" if k == "x-cos-acl" else v) for k, v in cos1.headers])
    r.equal(
        "COS-1 with a changed header is SignatureDoesNotMatch",
        verdict(auth, tampered, put_now),
        "SignatureDoesNotMatch",
    )
    r.equal("COS-1 after q-sign-time is AccessDenied", verdict(auth, cos1, 1557996351 + 1), "AccessDenied")
    r.equal(
        "COS-1 with another access key is InvalidAccessKeyId",
        verdict(objstore.CosAuth("AKIDother", COS_SK, "ap-beijing"), cos1, put_now),
        "InvalidAccessKeyId",
    )

    get_time, get_now = "1557989753;1557996953", 1557989753 + 100
    get_query = "response-content-type=application%2Foctet-stream&response-cache-control=max-age%3D600"
    cos2 = signed(
        "GET",
        COS_PATH,
        get_query,
        [
            ("Date", "Thu, 16 May 2019 06:55:53 GMT"),
            ("Host", COS_HOST),
            (
                "Authorization",
                cos_authorization(
                    get_time,
                    "date;host",
                    "response-cache-control;response-content-type",
                    "01681b8c9d798a678e43b685a9f1bba0f6c0e012",
                ),
            ),
        ],
    )
    r.equal("COS-2 (GET with response-* params, doc) verifies", verdict(auth, cos2, get_now), None)
    changed = signed("GET", COS_PATH, get_query.replace("600", "601"), cos2.headers)
    r.equal(
        "COS-2 with a changed param is SignatureDoesNotMatch", verdict(auth, changed, get_now), "SignatureDoesNotMatch"
    )

    sdk_put = signed(
        "PUT",
        COS_PATH,
        "",
        put_headers
        + [
            (
                "Authorization",
                cos_authorization(
                    put_time,
                    "content-length;content-md5;content-type;host;x-cos-acl;x-cos-grant-read",
                    "",
                    "fc4e4717b501da12715d5fc84a4880a87ad2b7ab",
                ),
            )
        ],
    )
    r.equal("COS-1 as the SDK signs it (no Date) verifies", verdict(auth, sdk_put, put_now), None)
    presigned = signed(
        "GET",
        "/exampleobject%28%E8%85%BE%E8%AE%AF%E4%BA%91%29",
        f"q-sign-algorithm=sha1&q-ak={COS_AK}&q-sign-time=1557989753%3B1557996953"
        "&q-key-time=1557989753%3B1557996953&q-header-list=host"
        "&q-url-param-list=response-cache-control%3Bresponse-content-type"
        "&q-signature=cf18ded2f669fcafa4b98e02c2a3fdb2b2e55c43"
        "&response-content-type=application%2Foctet-stream&response-cache-control=max-age%3D600",
        [("Host", COS_HOST)],
    )
    r.equal("COS-2 as an SDK presigned URL verifies", verdict(auth, presigned, get_now), None)
    r.equal(
        "COS-2 presigned URL after expiry is AccessDenied", verdict(auth, presigned, 1557996953 + 1), "AccessDenied"
    )


OSS_PATH = "/1234%2B-/123/1.txt"
OSS_QUERY = "param1=value1&%2Bparam1=value3&%7Cparam1=value4&%2Bparam2&%7Cparam2&param2"
OSS_CREDENTIAL = "ak/{date}/cn-hangzhou/oss/aliyun_v4_request"
OSS_UNSIGNED = [("abc", "value"), ("ZAbc", "value"), ("XYZ", "value")]


def oss_header_request(stamp, extra_headers, authorization):
    headers = [("x-oss-head1", "value")] + OSS_UNSIGNED + [("content-type", "text/plain")] + extra_headers
    headers += [("x-oss-content-sha256", "UNSIGNED-PAYLOAD"), ("x-oss-date", stamp), ("Authorization", authorization)]
    return signed("PUT", OSS_PATH, OSS_QUERY, headers)


def oss_query_request(stamp, extra_query, signature):
    credential = OSS_CREDENTIAL.format(date=stamp[:8]).replace("/", "%2F")
    query = (
        f"{OSS_QUERY}&x-oss-date={stamp}&x-oss-expires=599&x-oss-signature-version=OSS4-HMAC-SHA256"
        f"&x-oss-credential={credential}{extra_query}&x-oss-signature={signature}"
    )
    headers = [("content-type", "application/octet-stream"), ("x-oss-head1", "value")] + OSS_UNSIGNED
    return signed("PUT", OSS_PATH, query, headers)


def oss_auth_header(stamp, signature, additional=""):
    extra = f",AdditionalHeaders={additional}" if additional else ""
    return f"OSS4-HMAC-SHA256 Credential={OSS_CREDENTIAL.format(date=stamp[:8])}{extra},Signature={signature}"


def check_oss_vectors(r):
    auth = objstore.OssAuth("ak", "sk", "cn-hangzhou", "bucket")
    oss1 = oss_header_request(
        "20231216T162057Z",
        [],
        oss_auth_header("20231216T162057Z", "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"),
    )
    r.equal("OSS-1 (header auth) verifies", verdict(auth, oss1, 1702743657), None)
    tampered = signed(
        oss1.method, oss1.path, oss1.query, [(k, "other" if k == "x-oss-head1" else v) for k, v in oss1.headers]
    )
    r.equal(
        "OSS-1 with a changed header is SignatureDoesNotMatch",
        verdict(auth, tampered, 1702743657),
        "SignatureDoesNotMatch",
    )
    r.equal(
        "OSS-1 16 minutes later is RequestTimeTooSkewed",
        verdict(auth, oss1, 1702743657 + 16 * 60),
        "RequestTimeTooSkewed",
    )
    r.equal(
        "OSS-1 for another region is AccessDenied",
        verdict(objstore.OssAuth("ak", "sk", "cn-beijing", "bucket"), oss1, 1702743657),
        "AccessDenied",
    )
    r.equal(
        "OSS-1 for another bucket is SignatureDoesNotMatch",
        verdict(objstore.OssAuth("ak", "sk", "cn-hangzhou", "other"), oss1, 1702743657),
        "SignatureDoesNotMatch",
    )
    oss2 = oss_header_request(
        "20231217T034736Z",
        [("x-oss-security-token", "token")],
        oss_auth_header("20231217T034736Z", "b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"),
    )
    r.equal("OSS-2 (header auth, STS token) verifies", verdict(auth, oss2, 1702784856), None)
    oss3 = oss_header_request(
        "20231216T172512Z",
        [],
        oss_auth_header(
            "20231216T172512Z", "4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f", "abc;zabc"
        ),
    )
    r.equal("OSS-3 (header auth, AdditionalHeaders) verifies", verdict(auth, oss3, 1702747512), None)

    oss4 = oss_query_request("20231217T025437Z", "", "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe")
    r.equal("OSS-4 (presigned) verifies", verdict(auth, oss4, 1702781677 + 10), None)
    r.equal("OSS-4 after x-oss-expires is AccessDenied", verdict(auth, oss4, 1702781677 + 600), "AccessDenied")
    oss5 = oss_query_request(
        "20231217T035628Z",
        "&x-oss-security-token=token",
        "3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5",
    )
    r.equal("OSS-5 (presigned, STS token) verifies", verdict(auth, oss5, 1702785388 + 10), None)
    oss6 = oss_query_request(
        "20231217T033009Z",
        "&x-oss-additional-headers=abc%3Bzabc",
        "6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7",
    )
    r.equal("OSS-6 (presigned, additional headers) verifies", verdict(auth, oss6, 1702783809 + 10), None)


def main():
    r = Results()
    with r.section("COS worked examples"):
        check_cos_vectors(r)
    with r.section("OSS worked examples"):
        check_oss_vectors(r)
    for vendor in ("cos", "oss"):
        with r.section(f"{vendor} emulator"):
            run_live(r, vendor)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
