#!/usr/bin/env python3
"""A loopback Tencent COS / Alibaba OSS emulator for redback's tests.

    objstore.py --vendor cos|oss --port P --root DIR --bucket B --region R \\
        --access-key AK --secret-key SK [--max-uploads N]

It serves one bucket at the root of the server, as the real services do
under the bucket's host name: the object key is the percent-decoded request
path without its leading "/".  Once it accepts connections it prints
"listening <port>" on stdout (--port 0 picks a free port); then one line per
request goes to stderr.

Every request must be signed, in the Authorization header or as a presigned
URL.  The expected signature is computed by the vendor's official SDK
signing code, not a reimplementation: cos-python-sdk-v5's
`qcloud_cos.cos_auth.CosS3Auth` (q-sign-algorithm=sha1) and
alibabacloud-oss-v2's `alibabacloud_oss_v2.signer.SignerV4`
(OSS4-HMAC-SHA256).  A client this emulator accepts signs as the SDKs do.

Operations (plugins/objstore/VENDOR-NOTES.md section 3): put, get (one byte
range), head, delete, list (COS: V1 marker paging; OSS: ListObjectsV2),
multipart initiate / upload part / complete / abort, and the listing of
unfinished multipart uploads (ListMultipartUploads, `GET /?uploads`, with
key-marker / upload-id-marker paging, no delimiter; --max-uploads caps a
page below the services' 1000, to test paging).  Anything else gets a
vendor-style 400 or 405.

Storage under DIR: index.sqlite3 maps keys to data files in DIR/objects
(random names, so any key is stored faithfully, "/", "..", trailing "/" and
all); parts of multipart uploads live in DIR/parts.  Bodies are streamed to
DIR/tmp first and renamed into place, so a half-received upload is never
visible.
"""

import argparse
import base64
import binascii
import contextlib
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import sys
import threading
import time
import traceback
import types
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import quote, unquote, unquote_plus

from alibabacloud_oss_v2.credentials import StaticCredentialsProvider
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_oss_v2.types import HttpRequest, SigningContext
from qcloud_cos import CosConfig
from qcloud_cos import cos_auth

CHUNK = 1 << 20
MAX_XML_BODY = 4 << 20
MAX_LIST_KEYS = 1000


# --------------------------------------------------------------------------
# Errors and requests


class ServiceError(Exception):
    """A failed request: HTTP status, vendor error code and message.

    `details` become extra elements of the XML error body (StringToSign,
    Key, ...); `reason` is logged only (why authentication failed).
    """

    def __init__(self, status, code, message, reason="", **details):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details


def bad_request(message, code="InvalidArgument"):
    return ServiceError(400, code, message)


def access_denied(message, reason=""):
    return ServiceError(403, "AccessDenied", message, reason)


def signature_mismatch(reason, **details):
    return ServiceError(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature "
        "you provided. Check your key and signing method.",
        reason,
        **details,
    )


def parse_query(raw):
    """The query's (name, value) pairs, percent-decoded as UTF-8.

    "+" is a space, as in form encoding: cos-python-sdk-v5 (through
    requests) sends spaces so, and every client sends a plus sign as %2B.
    A name without "=" has the value "".
    """
    pairs = []
    for item in raw.split("&") if raw else []:
        name, _, value = item.partition("=")
        try:
            pairs.append((unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            raise bad_request(f"query parameter {item!r} is not UTF-8") from None
    return pairs


@dataclasses.dataclass
class SignedRequest:
    """What authentication looks at: method, raw path and query, headers."""

    method: str
    path: str
    query: str
    headers: list

    def header(self, name):
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def params(self):
        return parse_query(self.query)

    def decoded_path(self):
        if not self.path.startswith("/"):
            raise bad_request(f"request target {self.path!r} is not a path", "InvalidURI")
        try:
            return unquote(self.path, errors="strict")
        except UnicodeDecodeError:
            raise bad_request("the path is not UTF-8", "InvalidURI") from None

    def key(self):
        """The object key; "" for the bucket itself."""
        return self.decoded_path()[1:]


# --------------------------------------------------------------------------
# COS authentication: qcloud_cos.cos_auth.CosS3Auth


COS_AUTH_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)

# CosS3Auth reads the clock and its header whitelist from module globals;
# verification swaps them, so it runs one at a time.
_COS_SDK_LOCK = threading.Lock()


class _LogCapture(logging.Handler):
    """Keeps the debug messages of a logger while it is attached."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def find(self, prefix):
        return next((m[len(prefix) :] for m in self.messages if m.startswith(prefix)), "")


@contextlib.contextmanager
def _cos_sdk_at(now):
    """CosS3Auth with its clock at `now`, signing every header it is given
    (its own whitelist would drop e.g. `date`, which clients may sign), and
    its debug log captured: the SDK logs its FormatString and StringToSign.
    The log also carries the derived sign key, so it goes nowhere else."""
    logger = cos_auth.logger
    capture = _LogCapture()
    with _COS_SDK_LOCK:
        saved = (cos_auth.time, cos_auth.filter_headers, logger.level, logger.propagate)
        cos_auth.time = types.SimpleNamespace(time=lambda: now)
        cos_auth.filter_headers = dict
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(capture)
        try:
            yield capture
        finally:
            logger.removeHandler(capture)
            cos_auth.time, cos_auth.filter_headers, level, logger.propagate = saved
            logger.setLevel(level)


def cos_sdk_sign(conf, method, path, headers, params, key_time):
    """Signs like cos-python-sdk-v5 would at `key_time` ("start;end").

    `headers` and `params` are the exact name -> value maps to sign (names
    as on the wire; the SDK lowercases and URL-encodes them), `path` the
    decoded request path.  Returns (q-signature, FormatString, StringToSign).
    """
    start, end = (int(t) for t in key_time.split(";"))
    # CosS3Auth signs "<now-60>;<now+expire>".
    with _cos_sdk_at(start + 60) as log:
        auth = cos_auth.CosS3Auth(conf, key=path, params=params, expire=end - start - 60, sign_host=False)
        request = types.SimpleNamespace(method=method, url="http://emulator/", headers=dict(headers))
        auth(request)
    fields = dict(f.partition("=")[::2] for f in request.headers["Authorization"].split("&"))
    return fields["q-signature"], log.find("format str: "), log.find("str_to_sign: ")


def cos_encode(name):
    """A name as it appears in q-header-list / q-url-param-list."""
    return quote(name, safe="-_.~").lower()


def without_port(host):
    """`host` with a trailing ":port" removed, or None if it has none."""
    m = re.fullmatch(r"(.+):\d+", host)
    return m.group(1) if m else None


class CosAuth:
    """Verifies q-sign-algorithm=sha1 signatures (header or presigned URL)."""

    def __init__(self, access_key, secret_key, region):
        self.access_key = access_key
        self.conf = CosConfig(Region=region, SecretId=access_key, SecretKey=secret_key)

    def check(self, req, now):
        """Returns if `req` is signed right and valid at `now`; else raises."""
        fields = self._fields(req)
        if fields["q-ak"] != self.access_key:
            raise ServiceError(
                403, "InvalidAccessKeyId", "The SecretId does not exist", f"unknown access key {fields['q-ak']!r}"
            )
        if fields["q-sign-algorithm"] != "sha1":
            raise access_denied("q-sign-algorithm must be sha1")
        start, end = self._sign_time(fields)
        if not start <= now <= end:
            raise access_denied("Request has expired", f"now {int(now)} is outside q-sign-time {start};{end}")
        headers, missing = self._listed(req.headers, fields["q-header-list"])
        params, missing_params = self._listed(req.params(), fields["q-url-param-list"])
        missing += missing_params
        path = req.decoded_path()
        # The SDK signs the host without the port while requests sends it
        # with the port: accept the signed host in either form.
        host = headers.get("host")
        hosts = [host] + ([without_port(host)] if host and without_port(host) else [])
        first = None
        for candidate in hosts:
            if candidate is not None:
                headers["host"] = candidate
            signature, format_str, string_to_sign = cos_sdk_sign(
                self.conf, req.method, path, headers, params, fields["q-key-time"]
            )
            if hmac.compare_digest(signature, fields["q-signature"]):
                return
            first = first or (format_str, string_to_sign)
        reason = "q-signature differs from the SDK's"
        if host is not None:
            reason += f" (host signed as {' or '.join(map(repr, hosts))})"
        if missing:
            reason += f"; signed names absent from the request: {', '.join(missing)}"
        raise signature_mismatch(reason, FormatString=first[0], StringToSign=first[1])

    @staticmethod
    def _fields(req):
        """The q-* fields of the Authorization header or of the query."""
        header = req.header("authorization")
        if header is not None:
            fields = dict(f.partition("=")[::2] for f in header.split("&"))
        else:
            fields = {k: v for k, v in req.params() if k.startswith("q-")}
            if not fields:
                raise access_denied("Access Denied.", "no Authorization header and no q-signature in the query")
        missing = [f for f in COS_AUTH_FIELDS if f not in fields]
        if missing:
            raise access_denied(f"Authorization lacks {', '.join(missing)}")
        return fields

    @staticmethod
    def _sign_time(fields):
        if fields["q-sign-time"] != fields["q-key-time"]:
            # CosS3Auth, like every SDK, writes one value into both.
            raise signature_mismatch("q-sign-time differs from q-key-time")
        m = re.fullmatch(r"(\d+);(\d+)", fields["q-sign-time"])
        if not m:
            raise access_denied(f"q-sign-time {fields['q-sign-time']!r} is not <start>;<end>")
        return int(m.group(1)), int(m.group(2))

    @staticmethod
    def _listed(pairs, name_list):
        """The pairs whose encoded names `name_list` ("a;b") holds, as a map
        keyed by lowercase name; and the listed names not found."""
        wanted = set(name_list.split(";")) - {""}
        found = {}
        for name, value in pairs:
            if cos_encode(name) in wanted and name.lower() not in found:
                found[name.lower()] = value
        missing = sorted(wanted - {cos_encode(n) for n in found})
        return found, missing


# --------------------------------------------------------------------------
# OSS authentication: alibabacloud_oss_v2.signer.SignerV4


OSS_ALGORITHM = "OSS4-HMAC-SHA256"
OSS_QUERY_AUTH = (
    "x-oss-signature-version",
    "x-oss-credential",
    "x-oss-date",
    "x-oss-expires",
    "x-oss-signature",
    "x-oss-additional-headers",
    "x-oss-security-token",
)
OSS_MAX_SKEW = 15 * 60

# Error codes of OSS (the x-oss-ec header and <EC>), where its documentation
# gives them; other errors carry no EC.
OSS_EC = {
    "SignatureDoesNotMatch": "0002-00000201",
    "InvalidAccessKeyId": "0002-00000902",
    "RequestTimeTooSkewed": "0002-00000504",
    "NoSuchKey": "0026-00000001",
    "NoSuchUpload": "0017-00000244",
    "InvalidPartOrder": "0042-00000209",
    "EntityTooSmall": "0042-00000213",
}


class _RecordingSignerV4(SignerV4):
    """SignerV4 that keeps the canonical request it hashed, for the body of
    a SignatureDoesNotMatch error."""

    canonical_request = ""

    def _calc_canonical_request(self, signing_ctx, additional_headers=None):
        self.canonical_request = super()._calc_canonical_request(signing_ctx, additional_headers)
        return self.canonical_request


def parse_oss_date(value):
    """An x-oss-date (20231216T162057Z) as an aware datetime, or None."""
    try:
        return datetime.datetime.strptime(value or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def oss_query(pairs):
    """A query string with names and values encoded the V4 way (everything
    but A-Z a-z 0-9 - _ . ~), as SignerV4 expects it: it signs the query as
    it finds it in the URL."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


class OssAuth:
    """Verifies OSS4-HMAC-SHA256 signatures (header or presigned URL)."""

    def __init__(self, access_key, secret_key, region, bucket):
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.bucket = bucket

    def check(self, req, now):
        """Returns if `req` is signed right and valid at `now`; else raises."""
        params = dict(req.params())
        if req.header("authorization") is not None:
            self._check_header(req, now)
        elif "x-oss-signature" in params or "x-oss-signature-version" in params:
            self._check_query(req, params, now)
        else:
            raise ServiceError(
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
                "no Authorization header and no x-oss-signature in the query",
                EC="0003-00000002",
            )

    def _check_header(self, req, now):
        scheme, _, rest = req.header("authorization").partition(" ")
        if scheme != OSS_ALGORITHM:
            raise access_denied(f"only {OSS_ALGORITHM} is supported, not {scheme!r}")
        fields = dict(f.strip().partition("=")[::2] for f in rest.split(","))
        if "Credential" not in fields or "Signature" not in fields:
            raise access_denied("Invalid Authorization header: Credential and Signature are required.")
        signed_at = parse_oss_date(req.header("x-oss-date"))
        if signed_at is None:
            raise access_denied("x-oss-date header is missing or not YYYYMMDDTHHMMSSZ")
        self._check_credential(fields["Credential"], signed_at)
        skew = abs(now - signed_at.timestamp())
        if skew > OSS_MAX_SKEW:
            raise ServiceError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                f"x-oss-date is {int(skew)} s away from now",
            )
        if req.header("x-oss-content-sha256") != "UNSIGNED-PAYLOAD":
            raise ServiceError(
                403, "InvalidArgument", "x-oss-content-sha256 must be UNSIGNED-PAYLOAD", EC="0002-00000214"
            )
        ctx, signer = self._sign(req, req.params(), signed_at, fields.get("AdditionalHeaders", ""))
        expected = ctx.request.headers["Authorization"].rpartition("Signature=")[2]
        self._compare(fields["Signature"], expected, ctx, signer)

    def _check_query(self, req, params, now):
        if params.get("x-oss-signature-version") != OSS_ALGORITHM:
            raise access_denied(f"x-oss-signature-version must be {OSS_ALGORITHM}")
        signed_at = parse_oss_date(params.get("x-oss-date"))
        if signed_at is None:
            raise access_denied("x-oss-date is missing or not YYYYMMDDTHHMMSSZ")
        self._check_credential(params.get("x-oss-credential", ""), signed_at)
        expires = params.get("x-oss-expires", "")
        if not expires.isdigit():
            raise access_denied("x-oss-expires must be a number of seconds")
        if now > signed_at.timestamp() + int(expires):
            raise ServiceError(
                403,
                "AccessDenied",
                "Request has expired.",
                f"x-oss-date + x-oss-expires is {int(now - signed_at.timestamp()) - int(expires)} s past",
                EC="0002-00000236",
            )
        pairs = [(k, v) for k, v in req.params() if k != "x-oss-signature"]
        ctx, signer = self._sign(
            req,
            pairs,
            signed_at,
            params.get("x-oss-additional-headers", ""),
            expires=int(expires),
            token=params.get("x-oss-security-token"),
        )
        expected = dict(parse_query(ctx.request.url.partition("?")[2]))["x-oss-signature"]
        self._compare(params.get("x-oss-signature", ""), expected, ctx, signer)

    def _check_credential(self, credential, signed_at):
        """Checks "<AK>/<YYYYMMDD>/<region>/oss/aliyun_v4_request"."""
        parts = credential.split("/")
        if len(parts) != 5 or parts[3:] != ["oss", "aliyun_v4_request"]:
            raise access_denied("Invalid credential in Authorization header.", f"credential {credential!r}")
        access_key, date, region = parts[:3]
        if access_key != self.access_key:
            raise ServiceError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                f"unknown access key {access_key!r}",
            )
        if region != self.region:
            raise access_denied(
                "The signing region in credential is invalid.", f"region {region!r}, expected {self.region!r}"
            )
        if date != signed_at.strftime("%Y%m%d"):
            raise access_denied(
                "Invalid credential in Authorization header.", f"credential date {date} is not the x-oss-date's"
            )

    def _sign(self, req, pairs, signed_at, additional, expires=None, token=None):
        """Runs SignerV4 over the request as received; returns its context
        (signed request inside) and the signer."""
        query = oss_query(pairs)
        url = f"http://{req.header('host') or 'emulator'}{req.path}" + (f"?{query}" if query else "")
        key = req.key()
        ctx = SigningContext(
            product="oss",
            region=self.region,
            bucket=self.bucket,
            key=key or None,
            request=HttpRequest(req.method, url, headers=dict(req.headers)),
            credentials=StaticCredentialsProvider(self.access_key, self.secret_key, token).get_credentials(),
            signing_time=signed_at,
            additional_headers=set(additional.split(";")) - {""},
        )
        if expires is not None:
            ctx.auth_method_query = True
            ctx.expiration_time = signed_at + datetime.timedelta(seconds=expires)
        signer = _RecordingSignerV4()
        signer.sign(ctx)
        return ctx, signer

    @staticmethod
    def _compare(given, expected, ctx, signer):
        if not hmac.compare_digest(given, expected):
            raise signature_mismatch(
                "signature differs from SignerV4's",
                StringToSign=ctx.string_to_sign,
                CanonicalRequest=signer.canonical_request,
                SignatureProvided=given,
            )


# --------------------------------------------------------------------------
# Storage


@dataclasses.dataclass
class Blob:
    """A received body in DIR/tmp, not yet visible."""

    path: str
    size: int
    md5: str


@dataclasses.dataclass
class ObjectInfo:
    key: str
    file: str
    size: int
    etag: str
    mtime: float
    content_type: str
    multipart: bool


class Store:
    """Objects and multipart uploads of the one bucket, under `root`.

    The SQLite index is the truth of what exists: a data file becomes an
    object when its row commits, in the same lock that removes the file it
    replaces.
    """

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, file TEXT, size INTEGER,
            etag TEXT, mtime REAL, content_type TEXT, multipart INTEGER);
        CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, key TEXT, content_type TEXT, initiated REAL);
        CREATE TABLE IF NOT EXISTS parts (upload_id TEXT, number INTEGER, file TEXT, size INTEGER,
            md5 TEXT, PRIMARY KEY (upload_id, number));
    """

    def __init__(self, root):
        self.dirs = {name: os.path.join(root, name) for name in ("objects", "parts", "tmp")}
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)
        # Bodies cut off by a crash never became objects.
        for name in os.listdir(self.dirs["tmp"]):
            os.unlink(os.path.join(self.dirs["tmp"], name))
        self.lock = threading.Lock()
        self.db = sqlite3.connect(os.path.join(root, "index.sqlite3"), check_same_thread=False, isolation_level=None)
        self.db.executescript(self.SCHEMA)

    # Bodies

    def receive(self, chunks):
        """Streams `chunks` into a new file of DIR/tmp."""
        path = os.path.join(self.dirs["tmp"], uuid.uuid4().hex)
        md5, size = hashlib.md5(), 0
        try:
            with open(path, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
        except BaseException:
            os.unlink(path)
            raise
        return Blob(path, size, md5.hexdigest())

    def concatenate(self, files):
        """Copies `files` one after another into a new file of DIR/tmp."""

        def chunks():
            for name in files:
                with open(os.path.join(self.dirs["parts"], name), "rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk

        return self.receive(chunks())

    def _adopt(self, blob, where):
        """Moves a received body into DIR/<where>; returns its file name."""
        name = uuid.uuid4().hex
        os.replace(blob.path, os.path.join(self.dirs[where], name))
        return name

    def _unlink(self, where, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.dirs[where], name))

    # Objects

    def put(self, key, blob, etag, content_type, multipart=False):
        name = self._adopt(blob, "objects")
        with self.lock:
            old = self.db.execute("SELECT file FROM objects WHERE key = ?", (key,)).fetchone()
            self.db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, name, blob.size, etag, time.time(), content_type, int(multipart)),
            )
            if old:
                self._unlink("objects", old[0])

    def stat(self, key) -> Optional[ObjectInfo]:
        with self.lock:
            row = self.db.execute("SELECT * FROM objects WHERE key = ?", (key,)).fetchone()
        return ObjectInfo(*row) if row else None

    def open(self, key):
        """(info, open file) of an object, or None; the file stays readable
        whatever happens to the key afterwards."""
        with self.lock:
            row = self.db.execute("SELECT * FROM objects WHERE key = ?", (key,)).fetchone()
            if not row:
                return None
            info = ObjectInfo(*row)
            return info, open(os.path.join(self.dirs["objects"], info.file), "rb")

    def delete(self, key):
        with self.lock:
            row = self.db.execute("SELECT file FROM objects WHERE key = ?", (key,)).fetchone()
            if row:
                self.db.execute("DELETE FROM objects WHERE key = ?", (key,))
                self._unlink("objects", row[0])

    def scan(self, prefix, after, batch=1000):
        """Objects whose key starts with `prefix` and sorts after `after`, in
        byte order of their UTF-8 keys (SQLite's and Python's string order,
        in which the keys with a prefix are contiguous)."""
        while True:
            with self.lock:
                rows = self.db.execute(
                    "SELECT * FROM objects WHERE key >= ? AND key > ? ORDER BY key LIMIT ?", (prefix, after, batch)
                ).fetchall()
            for row in rows:
                info = ObjectInfo(*row)
                if not info.key.startswith(prefix):
                    return
                yield info
            if len(rows) < batch:
                return
            after = rows[-1][0]

    # Multipart uploads

    def create_upload(self, key, content_type):
        upload_id = uuid.uuid4().hex.upper()
        with self.lock:
            self.db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?)", (upload_id, key, content_type, time.time()))
        return upload_id

    def list_uploads(self, prefix, key_marker, id_marker, limit):
        """Unfinished uploads whose key starts with `prefix`, in order of key
        then upload id, after (`key_marker`, `id_marker`) as the services
        define it: keys after `key_marker`, and with an `id_marker` also the
        uploads of `key_marker` itself whose id sorts after it.  Returns
        ([(key, id, initiated)], truncated)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT key, id, initiated FROM uploads WHERE key >= ? ORDER BY key, id", (prefix,)
            ).fetchall()
        after = [
            row
            for row in rows
            if row[0].startswith(prefix)
            and (not key_marker or row[0] > key_marker or (id_marker and row[0] == key_marker and row[1] > id_marker))
        ]
        return after[:limit], len(after) > limit

    def upload(self, upload_id):
        """(key, content_type, {number: (file, size, md5)}) of an upload, or None."""
        with self.lock:
            row = self.db.execute("SELECT key, content_type FROM uploads WHERE id = ?", (upload_id,)).fetchone()
            if not row:
                return None
            parts = self.db.execute("SELECT number, file, size, md5 FROM parts WHERE upload_id = ?", (upload_id,))
            return row[0], row[1], {n: (f, s, m) for n, f, s, m in parts}

    def put_part(self, upload_id, number, blob):
        """Stores a part; False if the upload does not exist (any more)."""
        name = self._adopt(blob, "parts")
        with self.lock:
            if not self.db.execute("SELECT 1 FROM uploads WHERE id = ?", (upload_id,)).fetchone():
                self._unlink("parts", name)
                return False
            old = self.db.execute(
                "SELECT file FROM parts WHERE upload_id = ? AND number = ?", (upload_id, number)
            ).fetchone()
            self.db.execute(
                "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?)", (upload_id, number, name, blob.size, blob.md5)
            )
            if old:
                self._unlink("parts", old[0])
        return True

    def finish_upload(self, upload_id, key, blob, etag, content_type):
        """Turns a completed upload's concatenated body into the object and
        drops the upload; False if it was aborted meanwhile."""
        with self.lock:
            if not self.db.execute("SELECT 1 FROM uploads WHERE id = ?", (upload_id,)).fetchone():
                os.unlink(blob.path)
                return False
        self.put(key, blob, etag, content_type, multipart=True)
        self.abort(upload_id)
        return True

    def abort(self, upload_id):
        """Drops an upload and its parts; False if there was none."""
        with self.lock:
            files = [f for (f,) in self.db.execute("SELECT file FROM parts WHERE upload_id = ?", (upload_id,))]
            gone = self.db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount
            self.db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
        for name in files:
            self._unlink("parts", name)
        return gone > 0


# --------------------------------------------------------------------------
# Responses, XML, ranges


@dataclasses.dataclass
class Response:
    status: int
    headers: dict = dataclasses.field(default_factory=dict)
    body: bytes = b""
    file: object = None  # streamed instead of body: (open file, offset, length)


def xml_elements(parent, fields):
    """Adds (tag, value) children; a list value nests, None is left out."""
    for tag, value in fields:
        if value is None:
            continue
        element = ET.SubElement(parent, tag)
        if isinstance(value, list):
            xml_elements(element, value)
        else:
            element.text = str(value)


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def iso_date(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


INVALID, UNSATISFIABLE = "invalid", "unsatisfiable"


def resolve_range(value, size):
    """A `Range: bytes=a-b | a- | -n` header against an object of `size`
    bytes: (first, last, clamped) with `clamped` when it reached past the
    end, or INVALID (not one well-formed range) or UNSATISFIABLE."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if not m or m.group(1) == m.group(2) == "":
        return INVALID
    if m.group(1) == "":
        suffix = int(m.group(2))
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1, suffix > size
    first = int(m.group(1))
    if m.group(2) and int(m.group(2)) < first:
        return INVALID
    if first >= size:
        return UNSATISFIABLE
    last = int(m.group(2)) if m.group(2) else size - 1
    return first, min(last, size - 1), last >= size


def md5_etag_of_parts(md5s, upper):
    """The ETag of a multipart object: md5 of the parts' binary md5s, "-n"."""
    digest = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest()
    return f'"{digest.upper() if upper else digest}-{len(md5s)}"'


def parse_complete_body(body):
    """The (part number, ETag) list of a CompleteMultipartUpload XML body."""
    try:
        root = ET.fromstring(body)
        parts = []
        for part in root:
            if part.tag.rpartition("}")[2] != "Part":
                continue
            fields = {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in part}
            parts.append((int(fields["PartNumber"]), fields["ETag"]))
    except (ET.ParseError, KeyError, ValueError):
        raise bad_request("The XML you provided was not well-formed.", "MalformedXML") from None
    if root.tag.rpartition("}")[2] != "CompleteMultipartUpload" or not parts:
        raise bad_request("The XML you provided was not well-formed.", "MalformedXML")
    return parts


def bare_etag(etag):
    return etag.strip().strip('"').lower()


# --------------------------------------------------------------------------
# The vendors' dialects


class Dialect:
    """What COS and OSS do differently; the operations live in Bucket.

    Subclasses add error_response(err, req, request_id) -> Response,
    list_objects(store, params) -> XML bytes and object_range(req, size) ->
    (first, last) or None for the whole object.
    """

    name = ""
    server = ""
    request_id_header = ""
    xml_declaration = b""
    min_part_size = 0
    uppercase_etag = False
    list_params = frozenset()
    # The ListMultipartUploadsResult element naming the encoding-type.
    uploads_encoding_tag = "EncodingType"

    def __init__(self, bucket):
        self.bucket = bucket

    def etag(self, md5):
        return f'"{md5.upper() if self.uppercase_etag else md5}"'

    def xml(self, root, fields):
        element = ET.Element(root)
        xml_elements(element, fields)
        return self.xml_declaration + ET.tostring(element, encoding="utf-8")

    def upload_fields(self, key, upload_id, initiated):
        """The children of one <Upload> of ListMultipartUploadsResult."""
        return [("Key", key), ("UploadId", upload_id), ("Initiated", iso_date(initiated))]


def url_encoder(params):
    """The encoding of names in a response: quoted for encoding-type=url."""
    encoding = params.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise bad_request("encoding-type must be url")
    return lambda s: quote(s, safe="/")


def max_keys(params, default):
    value = params.get("max-keys", str(default))
    if not value.isdigit():
        raise bad_request(f"max-keys {value!r} is not a number")
    return min(int(value), MAX_LIST_KEYS)


def list_entries(store, prefix, delimiter, after, limit):
    """One page of a listing: keys and common prefixes after `after`.

    Returns (objects, common prefixes, truncated, last entry returned); a
    common prefix counts as one entry, and entries at or before `after`
    (a key or a common prefix) are skipped.
    """
    objects, prefixes, last = [], [], None
    for info in store.scan(prefix, after):
        common = None
        if delimiter:
            i = info.key.find(delimiter, len(prefix))
            if i >= 0:
                common = info.key[: i + len(delimiter)]
        entry = common or info.key
        if entry <= after or (common and prefixes and prefixes[-1] == common):
            continue
        if len(objects) + len(prefixes) == limit:
            return objects, prefixes, limit > 0, last
        if common:
            prefixes.append(common)
        else:
            objects.append(info)
        last = entry
    return objects, prefixes, False, last


class Cos(Dialect):
    name = "cos"
    server = "tencent-cos"
    request_id_header = "x-cos-request-id"
    xml_declaration = b"<?xml version='1.0' encoding='utf-8' ?>\n"
    min_part_size = 1 << 20
    list_params = frozenset({"prefix", "delimiter", "marker", "max-keys", "encoding-type"})
    uploads_encoding_tag = "Encoding-Type"

    def upload_fields(self, key, upload_id, initiated):
        owner = [("ID", self.bucket), ("DisplayName", self.bucket)]
        return [
            ("Key", key),
            ("UploadId", upload_id),
            ("StorageClass", "STANDARD"),
            ("Initiator", owner),
            ("Owner", owner),
            ("Initiated", iso_date(initiated)),
        ]

    def error_response(self, err, req, request_id):
        fields = [
            ("Code", err.code),
            ("Message", err.message),
            ("Resource", f"{req.header('host') or ''}{req.path}"),
            ("RequestId", request_id),
            ("TraceId", secrets.token_urlsafe(32)),
        ]
        fields += [(k, v) for k, v in err.details.items()]
        return Response(err.status, {"Content-Type": "application/xml"}, self.xml("Error", fields))

    def list_objects(self, store, params):
        """GET Bucket (List Objects, marker paging)."""
        enc = url_encoder(params)
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        marker, limit = params.get("marker", ""), max_keys(params, MAX_LIST_KEYS)
        objects, prefixes, truncated, last = list_entries(store, prefix, delimiter, marker, limit)
        fields = [
            ("Name", self.bucket),
            ("EncodingType", params.get("encoding-type")),
            ("Prefix", enc(prefix)),
            ("Marker", enc(marker)),
            ("MaxKeys", limit),
            ("Delimiter", enc(delimiter) if delimiter else None),
            ("IsTruncated", str(truncated).lower()),
            ("NextMarker", enc(last) if truncated else None),
        ]
        fields += [("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]
        fields += [
            (
                "Contents",
                [
                    ("Key", enc(o.key)),
                    ("LastModified", iso_date(o.mtime)),
                    ("ETag", o.etag),
                    ("Size", o.size),
                    ("Owner", [("ID", self.bucket), ("DisplayName", self.bucket)]),
                    ("StorageClass", "STANDARD"),
                ],
            )
            for o in objects
        ]
        return self.xml("ListBucketResult", fields)

    def object_range(self, req, size):
        """COS answers a bad or unsatisfiable range with 416 InvalidRange."""
        value = req.header("range")
        if value is None:
            return None
        resolved = resolve_range(value, size)
        if resolved in (INVALID, UNSATISFIABLE):
            raise ServiceError(
                416, "InvalidRange", "The requested range cannot be satisfied.", f"Range {value!r}, size {size}"
            )
        return resolved[:2]


class Oss(Dialect):
    name = "oss"
    server = "AliyunOSS"
    request_id_header = "x-oss-request-id"
    xml_declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    min_part_size = 100 << 10
    uppercase_etag = True
    list_params = frozenset(
        {
            "list-type",
            "prefix",
            "delimiter",
            "continuation-token",
            "start-after",
            "max-keys",
            "encoding-type",
            "fetch-owner",
        }
    )

    def error_response(self, err, req, request_id):
        ec = err.details.get("EC") or OSS_EC.get(err.code)
        fields = [
            ("Code", err.code),
            ("Message", err.message),
            ("RequestId", request_id),
            ("HostId", req.header("host") or ""),
        ]
        fields += [(k, v) for k, v in err.details.items() if k != "EC"]
        fields.append(("EC", ec))
        headers = {"Content-Type": "application/xml"}
        if ec:
            headers["x-oss-ec"] = ec
        return Response(err.status, headers, self.xml("Error", fields))

    def list_objects(self, store, params):
        """ListObjectsV2 (list-type=2, continuation tokens)."""
        if params.get("list-type") != "2":
            raise bad_request("this emulator implements ListObjectsV2 only: send list-type=2")
        enc = url_encoder(params)
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        token, start_after = params.get("continuation-token"), params.get("start-after", "")
        after = self._token_position(token) if token is not None else start_after
        limit = max_keys(params, 100)
        objects, prefixes, truncated, last = list_entries(store, prefix, delimiter, after, limit)
        owner = params.get("fetch-owner") == "true"
        fields = [
            ("Name", self.bucket),
            ("Prefix", enc(prefix)),
            ("StartAfter", enc(start_after) if start_after else None),
            ("ContinuationToken", enc(token) if token is not None else None),
            ("MaxKeys", limit),
            ("Delimiter", enc(delimiter)),
            ("EncodingType", params.get("encoding-type")),
            ("IsTruncated", str(truncated).lower()),
            ("NextContinuationToken", enc(base64.b64encode(last.encode()).decode()) if truncated else None),
            ("KeyCount", len(objects) + len(prefixes)),
        ]
        fields += [
            (
                "Contents",
                [
                    ("Key", enc(o.key)),
                    ("LastModified", iso_date(o.mtime)),
                    ("ETag", o.etag),
                    ("Type", "Multipart" if o.multipart else "Normal"),
                    ("Size", o.size),
                    ("StorageClass", "Standard"),
                    ("Owner", [("ID", self.bucket), ("DisplayName", self.bucket)] if owner else None),
                ],
            )
            for o in objects
        ]
        fields += [("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]
        return self.xml("ListBucketResult", fields)

    @staticmethod
    def _token_position(token):
        """Continuation tokens are the last entry returned, base64-encoded."""
        try:
            return base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise bad_request("The continuation token provided is incorrect") from None

    def object_range(self, req, size):
        """OSS ignores a bad range (whole object, 200) unless the client asks
        for `x-oss-range-behavior: standard`: then an end past the object is
        cut to it and a start past it is 416 InvalidRange."""
        value = req.header("range")
        if value is None:
            return None
        resolved = resolve_range(value, size)
        standard = (req.header("x-oss-range-behavior") or "").lower() == "standard"
        if resolved == UNSATISFIABLE and standard:
            raise ServiceError(
                416, "InvalidRange", "The requested range cannot be satisfied.", f"Range {value!r}, size {size}"
            )
        if resolved in (INVALID, UNSATISFIABLE) or (resolved[2] and not standard):
            return None
        return resolved[:2]


# --------------------------------------------------------------------------
# The bucket's operations


AUTH_PARAMS = {"cos": set(COS_AUTH_FIELDS) | {"x-cos-security-token"}, "oss": set(OSS_QUERY_AUTH)}
UPLOADS_LIST_PARAMS = {
    "uploads",
    "prefix",
    "delimiter",
    "key-marker",
    "upload-id-marker",
    "max-uploads",
    "encoding-type",
}


class Bucket:
    """The REST operations on the one bucket, request in, Response out."""

    def __init__(self, dialect, store, max_uploads=MAX_LIST_KEYS):
        self.dialect = dialect
        self.store = store
        self.max_uploads = max_uploads

    def handle(self, req, body):
        """Routes an authenticated request; `body` is its RequestBody."""
        key = req.key()
        params = dict(req.params())
        method = req.method
        if key == "":
            if method == "GET" and "uploads" in params:
                return self._op(params, UPLOADS_LIST_PARAMS, self.list_uploads, params)
            if method == "GET":
                return self._op(params, self.dialect.list_params, self.list_objects, params)
            raise ServiceError(405, "MethodNotAllowed", f"{method} on the bucket is not supported by this emulator")
        if "uploads" in params and method == "POST":
            return self._op(params, {"uploads", "encoding-type"}, self.initiate, req, key, params)
        if "uploadId" in params:
            if method == "PUT" and "partNumber" in params:
                return self._op(params, {"uploadId", "partNumber"}, self.upload_part, params, body)
            if method == "POST":
                return self._op(params, {"uploadId", "encoding-type"}, self.complete, req, key, params, body)
            if method == "DELETE":
                return self._op(params, {"uploadId"}, self.abort, params)
        ops = {"PUT": self.put, "GET": self.get, "HEAD": self.head, "DELETE": self.delete}
        if method not in ops or "uploads" in params or "uploadId" in params:
            raise ServiceError(
                405, "MethodNotAllowed", f"{method} with these parameters is not supported by this emulator"
            )
        allowed = {k for k in params if k.startswith("response-")} if method == "GET" else set()
        return self._op(params, allowed, ops[method], req, key, body)

    def _op(self, params, allowed, op, *args):
        unknown = sorted(set(params) - set(allowed) - AUTH_PARAMS[self.dialect.name])
        if unknown:
            raise bad_request(f"unsupported query parameter(s) for this operation: {', '.join(unknown)}")
        return op(*args)

    # Objects

    def put(self, req, key, body):
        if req.header(f"x-{self.dialect.name}-copy-source") is not None:
            raise bad_request("copying objects is not supported by this emulator")
        blob = self.store.receive(body.chunks())
        self._check_md5(req, blob)
        etag = self.dialect.etag(blob.md5)
        self.store.put(key, blob, etag, req.header("content-type") or "application/octet-stream")
        return Response(200, {"ETag": etag})

    @staticmethod
    def _check_md5(req, blob):
        """Content-MD5, when sent, must be the body's."""
        given = req.header("content-md5")
        if given is None:
            return
        try:
            ok = base64.b64decode(given, validate=True).hex() == blob.md5
        except binascii.Error:
            ok = False
        if not ok:
            os.unlink(blob.path)
            raise bad_request("The Content-MD5 you specified did not match what we received.", "BadDigest")

    def _missing(self, key):
        return ServiceError(404, "NoSuchKey", "The specified key does not exist.", Key=key)

    def _object_headers(self, info):
        headers = {
            "Content-Type": info.content_type,
            "ETag": info.etag,
            "Last-Modified": http_date(info.mtime),
            "Accept-Ranges": "bytes",
        }
        if self.dialect.name == "oss":
            headers["x-oss-object-type"] = "Multipart" if info.multipart else "Normal"
        return headers

    def get(self, req, key, body):
        opened = self.store.open(key)
        if opened is None:
            raise self._missing(key)
        info, f = opened
        try:
            span = self.dialect.object_range(req, info.size)
        except ServiceError:
            f.close()
            raise
        headers = self._object_headers(info)
        for name, value in req.params():
            if name.startswith("response-"):
                headers[name[len("response-") :].title()] = value
        if span is None:
            return Response(200, headers, file=(f, 0, info.size))
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
        return Response(206, headers, file=(f, first, last - first + 1))

    def head(self, req, key, body):
        info = self.store.stat(key)
        if info is None:
            raise self._missing(key)
        headers = self._object_headers(info)
        headers["Content-Length"] = str(info.size)
        return Response(200, headers)

    def delete(self, req, key, body):
        self.store.delete(key)
        return Response(204)

    def list_objects(self, params):
        return Response(200, {"Content-Type": "application/xml"}, self.dialect.list_objects(self.store, params))

    # Multipart uploads

    def _no_upload(self, upload_id):
        return ServiceError(
            404,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed.",
            UploadId=upload_id,
        )

    def initiate(self, req, key, params):
        upload_id = self.store.create_upload(key, req.header("content-type") or "application/octet-stream")
        enc = url_encoder(params)
        fields = [
            ("Bucket", self.dialect.bucket),
            ("Key", enc(key)),
            ("UploadId", upload_id),
            ("EncodingType", params.get("encoding-type")),
        ]
        return Response(
            200, {"Content-Type": "application/xml"}, self.dialect.xml("InitiateMultipartUploadResult", fields)
        )

    def upload_part(self, params, body):
        upload_id, number = params["uploadId"], params["partNumber"]
        if not number.isdigit() or not 1 <= int(number) <= 10000:
            raise bad_request("partNumber must be an integer from 1 to 10000")
        if self.store.upload(upload_id) is None:
            raise self._no_upload(upload_id)
        blob = self.store.receive(body.chunks())
        if not self.store.put_part(upload_id, int(number), blob):
            raise self._no_upload(upload_id)
        return Response(200, {"ETag": self.dialect.etag(blob.md5)})

    def complete(self, req, key, params, body):
        upload_id = params["uploadId"]
        upload = self.store.upload(upload_id)
        if upload is None:
            raise self._no_upload(upload_id)
        upload_key, content_type, stored = upload
        if upload_key != key:
            raise self._no_upload(upload_id)
        listed = parse_complete_body(body.read_all(MAX_XML_BODY))
        self._check_parts(listed, stored)
        blob = self.store.concatenate([stored[n][0] for n, _ in listed])
        etag = md5_etag_of_parts([stored[n][2] for n, _ in listed], self.dialect.uppercase_etag)
        if not self.store.finish_upload(upload_id, key, blob, etag, content_type):
            raise self._no_upload(upload_id)
        enc = url_encoder(params)
        fields = [
            ("EncodingType", params.get("encoding-type")),
            ("Location", f"http://{req.header('host') or ''}/{quote(key)}"),
            ("Bucket", self.dialect.bucket),
            ("Key", enc(key)),
            ("ETag", etag),
        ]
        return Response(
            200, {"Content-Type": "application/xml"}, self.dialect.xml("CompleteMultipartUploadResult", fields)
        )

    def _check_parts(self, listed, stored):
        numbers = [n for n, _ in listed]
        if any(a >= b for a, b in zip(numbers, numbers[1:])):
            raise bad_request("The list of parts was not in ascending order.", "InvalidPartOrder")
        for number, etag in listed:
            if number not in stored or bare_etag(etag) != stored[number][2]:
                raise bad_request(
                    "One or more of the specified parts could not be found or the specified "
                    "entity tag might not have matched the part's entity tag.",
                    "InvalidPart",
                )
        for number in numbers[:-1]:
            if stored[number][1] < self.dialect.min_part_size:
                raise bad_request(
                    f"Your proposed upload is smaller than the minimum allowed size: part {number} "
                    f"has {stored[number][1]} bytes, the minimum is {self.dialect.min_part_size}",
                    "EntityTooSmall",
                )

    def abort(self, params):
        upload_id = params["uploadId"]
        if not self.store.abort(upload_id):
            raise self._no_upload(upload_id)
        return Response(204)

    def list_uploads(self, params):
        """ListMultipartUploads: the unfinished uploads under a prefix, at most
        max-uploads (and --max-uploads) a page."""
        if params.get("delimiter"):
            raise bad_request("delimiter is not supported by this emulator's ListMultipartUploads")
        value = params.get("max-uploads") or str(MAX_LIST_KEYS)
        if not value.isdigit() or not 1 <= int(value) <= MAX_LIST_KEYS:
            raise bad_request(f"max-uploads {value!r} is not a number from 1 to {MAX_LIST_KEYS}")
        limit = min(int(value), self.max_uploads)
        enc = url_encoder(params)
        prefix = params.get("prefix", "")
        key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")
        uploads, truncated = self.store.list_uploads(prefix, key_marker, id_marker, limit)
        fields = [
            ("Bucket", self.dialect.bucket),
            (self.dialect.uploads_encoding_tag, params.get("encoding-type")),
            ("KeyMarker", enc(key_marker)),
            ("UploadIdMarker", id_marker),
            ("NextKeyMarker", enc(uploads[-1][0]) if truncated else None),
            ("NextUploadIdMarker", uploads[-1][1] if truncated else None),
            ("MaxUploads", limit),
            ("IsTruncated", str(truncated).lower()),
            ("Prefix", enc(prefix)),
        ]
        fields += [("Upload", self.dialect.upload_fields(enc(k), i, t)) for k, i, t in uploads]
        return Response(
            200, {"Content-Type": "application/xml"}, self.dialect.xml("ListMultipartUploadsResult", fields)
        )


# --------------------------------------------------------------------------
# HTTP


class RequestBody:
    """A request's body, read at most once, by Content-Length or chunked."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        encoding = (headers.get("Transfer-Encoding") or "").lower()
        if encoding not in ("", "chunked"):
            raise bad_request(f"Transfer-Encoding {encoding!r} is not supported")
        self.chunked = encoding == "chunked"
        length = headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise bad_request(f"Content-Length {length!r} is not a number")
        self.remaining = 0 if self.chunked else int(length)
        self.done = False

    def chunks(self):
        """Yields the body in pieces of at most CHUNK bytes."""
        while not self.done:
            if self.chunked and self.remaining == 0:
                self._next_chunk()
                continue
            piece = self.rfile.read(min(self.remaining, CHUNK)) if self.remaining else b""
            if self.remaining and not piece:
                raise ConnectionError("the client closed the connection inside the body")
            self.remaining -= len(piece)
            if self.chunked and self.remaining == 0:
                self.rfile.readline()  # the CRLF after a chunk
            elif not self.chunked and self.remaining == 0:
                self.done = True
            if piece:
                yield piece

    def _next_chunk(self):
        size_line = self.rfile.readline(1024)
        try:
            self.remaining = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ConnectionError(f"bad chunk size line {size_line!r}") from None
        if self.remaining == 0:
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.done = True

    def read_all(self, limit):
        data = bytearray()
        for piece in self.chunks():
            data += piece
            if len(data) > limit:
                raise bad_request(f"the body is larger than {limit} bytes", "EntityTooLarge")
        return bytes(data)

    def discard(self):
        for _ in self.chunks():
            pass


class Handler(BaseHTTPRequestHandler):
    """One connection; requests go to the server's Bucket after checking
    their signature."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.serve()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def version_string(self):
        return self.server.bucket.dialect.server

    def log_message(self, format, *args):
        """http.server's own messages (malformed requests) go to stderr."""
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def log_request(self, code="-", size="-"):
        """Replaced by one line per request in serve()."""

    def serve(self):
        bucket = self.server.bucket
        request_id = secrets.token_hex(12).upper()
        path, _, query = self.path.partition("?")
        req = SignedRequest(self.command, path, query, list(self.headers.items()))
        body, note = None, ""
        try:
            body = RequestBody(self.rfile, self.headers)
            self.server.auth.check(req, time.time())
            response = bucket.handle(req, body)
        except ServiceError as err:
            response = bucket.dialect.error_response(err, req, request_id)
            note = f" {err.code}: {err.message}" + (f" ({err.reason})" if err.reason else "")
        except ConnectionError as err:
            self.close_connection = True
            return self._log(path, query, "-", f" connection lost: {err}")
        except Exception as err:  # a bug of the emulator: tell the client and the log
            traceback.print_exc()
            response = bucket.dialect.error_response(ServiceError(500, "InternalError", repr(err)), req, request_id)
            note, body = f" InternalError: {err!r}", None
        try:
            if body is None:
                self.close_connection = True
            else:
                body.discard()
            self._send(response, request_id)
        except ConnectionError as err:
            note += f" (connection lost: {err})"
            self.close_connection = True
        finally:
            if response.file:
                response.file[0].close()
        self._log(path, query, response.status, note)

    def _log(self, path, query, status, note):
        """One stderr line: method, path, the query's parameter names (not
        their values: presigned signatures stay out), status, why it failed."""
        names = "&".join(name.partition("=")[0] for name in query.split("&") if name)
        target = path + (f"?{names}" if names else "")
        sys.stderr.write(f"{self.command} {target} {status}{note}\n")

    def _send(self, response, request_id):
        self.send_response(response.status)
        headers = dict(response.headers)
        headers[self.server.bucket.dialect.request_id_header] = request_id
        if response.file:
            length = response.file[2]
        else:
            length = len(response.body)
        if self.command == "HEAD":
            headers.setdefault("Content-Length", "0")
        else:
            headers["Content-Length"] = str(length)
        if self.close_connection:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file:
            f, offset, length = response.file
            if self.connection.sendfile(f, offset, length) != length:
                raise ConnectionError("the object's file ended early")
        else:
            self.wfile.write(response.body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, auth, bucket):
        super().__init__(("127.0.0.1", port), Handler)
        self.auth = auth
        self.bucket = bucket


def make_auth(args):
    if args.vendor == "cos":
        return CosAuth(args.access_key, args.secret_key, args.region)
    return OssAuth(args.access_key, args.secret_key, args.region, args.bucket)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vendor", choices=("cos", "oss"), required=True)
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--root", required=True, help="directory holding the objects")
    p.add_argument("--bucket", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument(
        "--max-uploads",
        type=int,
        default=MAX_LIST_KEYS,
        help=f"the most uploads a ListMultipartUploads page holds (services: {MAX_LIST_KEYS})",
    )
    args = p.parse_args(argv)
    if not 1 <= args.max_uploads <= MAX_LIST_KEYS:
        p.error(f"--max-uploads must be from 1 to {MAX_LIST_KEYS}")
    return args


def main(argv=None):
    args = parse_args(argv)
    dialect = (Cos if args.vendor == "cos" else Oss)(args.bucket)
    server = Server(args.port, make_auth(args), Bucket(dialect, Store(args.root), args.max_uploads))
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
