//! Alibaba Cloud OSS signatures, version 4 (`OSS4-HMAC-SHA256`), in the
//! `Authorization` header form and the presigned-query form.
//!
//! The scheme follows SigV4 with OSS's own choices: the canonical URI
//! always names the bucket (`/bucket/key`, whatever the host), a query
//! parameter without a value is written without `=`, the signed headers
//! are every `x-oss-*` header plus `content-type` and `content-md5` (and
//! any named in `AdditionalHeaders`), the payload is never hashed, and the
//! key derivation starts from `"aliyun_v4" + secret`.

use crate::hash::{hex, hmac_sha256, sha256_hex};
use crate::sigv4::{Credentials, UNSIGNED_PAYLOAD};
use crate::uri;

/// Who signs, for which region, at which time.
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    /// `cn-hangzhou` (without the `oss-` of host names).
    pub region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, UTC.
    pub date: &'a str,
}

/// The parts of a request the signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The bucket (empty for service-level calls).
    pub bucket: &'a str,
    /// The object key, not encoded (empty for bucket-level calls).
    pub key: &'a str,
    pub query: &'a [(String, String)],
    /// Every header sent; which of them are signed follows the scheme.
    pub headers: &'a [(String, String)],
    /// Headers signed beyond the default set (lowercase names).
    pub additional: &'a [&'a str],
}

fn canonical_query(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri::encode(k, false), uri::encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn signed_by_default(name: &str) -> bool {
    name.starts_with("x-oss-") || name == "content-type" || name == "content-md5"
}

impl Signer<'_> {
    fn day(&self) -> &str {
        &self.date[..8]
    }

    fn scope(&self) -> String {
        format!("{}/{}/oss/aliyun_v4_request", self.day(), self.region)
    }

    /// The additional headers actually present and not signed anyway,
    /// sorted: the `AdditionalHeaders` value.
    fn additional(&self, req: &Request) -> Vec<String> {
        let mut names: Vec<String> = req
            .additional
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .filter(|n| !signed_by_default(n))
            .filter(|n| req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n)))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn signature(
        &self,
        req: &Request,
        query: &[(String, String)],
        additional: &[String],
    ) -> String {
        let mut headers: Vec<(String, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .filter(|(k, _)| signed_by_default(k) || additional.contains(k))
            .collect();
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let uri = match (req.bucket.is_empty(), req.key.is_empty()) {
            (true, _) => "/".to_string(),
            (false, true) => format!("/{}/", req.bucket),
            (false, false) => format!("/{}/{}", req.bucket, uri::encode(req.key, true)),
        };
        let canonical = format!(
            "{}\n{uri}\n{}\n{canonical_headers}\n{}\n{UNSIGNED_PAYLOAD}",
            req.method,
            canonical_query(query),
            additional.join(";"),
        );
        let to_sign = format!(
            "OSS4-HMAC-SHA256\n{}\n{}\n{}",
            self.date,
            self.scope(),
            sha256_hex(canonical.as_bytes())
        );
        let k = format!("aliyun_v4{}", self.credentials.secret_key);
        let k = hmac_sha256(k.as_bytes(), self.day().as_bytes());
        let k = hmac_sha256(&k, self.region.as_bytes());
        let k = hmac_sha256(&k, b"oss");
        let k = hmac_sha256(&k, b"aliyun_v4_request");
        hex(&hmac_sha256(&k, to_sign.as_bytes()))
    }

    /// The `Authorization` header value for `req`, which must carry the
    /// `x-oss-date` (this signer's date) and `x-oss-content-sha256:
    /// UNSIGNED-PAYLOAD` headers.
    pub fn authorization(&self, req: &Request) -> String {
        let additional = self.additional(req);
        let signature = self.signature(req, req.query, &additional);
        let additional = if additional.is_empty() {
            String::new()
        } else {
            format!(",AdditionalHeaders={}", additional.join(";"))
        };
        format!(
            "OSS4-HMAC-SHA256 Credential={}/{}{additional},Signature={signature}",
            self.credentials.access_key,
            self.scope()
        )
    }

    /// The query string of a presigned `req`, valid for `expires_secs`:
    /// the request's own parameters and the signature's.
    pub fn presign(&self, req: &Request, expires_secs: u32) -> String {
        let additional = self.additional(req);
        let mut query = req.query.to_vec();
        query.extend([
            ("x-oss-signature-version".into(), "OSS4-HMAC-SHA256".into()),
            (
                "x-oss-credential".into(),
                format!("{}/{}", self.credentials.access_key, self.scope()),
            ),
            ("x-oss-date".into(), self.date.into()),
            ("x-oss-expires".into(), expires_secs.to_string()),
        ]);
        if !additional.is_empty() {
            query.push(("x-oss-additional-headers".into(), additional.join(";")));
        }
        let signature = self.signature(req, &query, &additional);
        format!("{}&x-oss-signature={signature}", canonical_query(&query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected values of alibabacloud-oss-python-sdk-v2's signer tests
    // (tests/unit/signer/test_v4.py), which oss2 2.19.1 reproduces too.
    fn creds() -> Credentials {
        Credentials {
            access_key: "ak".into(),
            secret_key: "sk".into(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn query() -> Vec<(String, String)> {
        pairs(&[
            ("param1", "value1"),
            ("+param1", "value3"),
            ("|param1", "value4"),
            ("+param2", ""),
            ("|param2", ""),
            ("param2", ""),
        ])
    }

    fn headers(content_type: &str, date: Option<&str>) -> Vec<(String, String)> {
        let mut h = pairs(&[
            ("x-oss-head1", "value"),
            ("abc", "value"),
            ("ZAbc", "value"),
            ("XYZ", "value"),
            ("content-type", content_type),
        ]);
        if let Some(d) = date {
            h.push(("x-oss-date".into(), d.into()));
            h.push(("x-oss-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        }
        h
    }

    #[test]
    fn header_example() {
        let c = creds();
        let s = Signer {
            credentials: &c,
            region: "cn-hangzhou",
            date: "20231216T162057Z",
        };
        let (q, h) = (query(), headers("text/plain", Some("20231216T162057Z")));
        let req = Request {
            method: "PUT",
            bucket: "bucket",
            key: "1234+-/123/1.txt",
            query: &q,
            headers: &h,
            additional: &[],
        };
        assert_eq!(
            s.authorization(&req),
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
             Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
        );
    }

    #[test]
    fn header_example_with_additional_headers() {
        let c = creds();
        let s = Signer {
            credentials: &c,
            region: "cn-hangzhou",
            date: "20231216T172512Z",
        };
        let (q, h) = (query(), headers("text/plain", Some("20231216T172512Z")));
        let req = Request {
            method: "PUT",
            bucket: "bucket",
            key: "1234+-/123/1.txt",
            query: &q,
            headers: &h,
            // Default-signed and absent names are dropped.
            additional: &["x-oss-no-exist", "ZAbc", "x-oss-head1", "abc"],
        };
        assert_eq!(
            s.authorization(&req),
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
             AdditionalHeaders=abc;zabc,\
             Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"
        );
    }

    #[test]
    fn presigned_examples() {
        let c = creds();
        let h = headers("application/octet-stream", None);
        let q = query();
        let req = Request {
            method: "PUT",
            bucket: "bucket",
            key: "1234+-/123/1.txt",
            query: &q,
            headers: &h,
            additional: &[],
        };
        let s = Signer {
            credentials: &c,
            region: "cn-hangzhou",
            date: "20231217T025437Z",
        };
        let url = s.presign(&req, 599);
        assert!(url.contains("&x-oss-expires=599&"), "{url}");
        assert!(
            url.ends_with(
                "&x-oss-signature=a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe"
            ),
            "{url}"
        );
        let s = Signer {
            date: "20231217T033009Z",
            ..s
        };
        let req = Request {
            additional: &["ZAbc", "abc"],
            ..req
        };
        let url = s.presign(&req, 599);
        assert!(url.contains("x-oss-additional-headers=abc%3Bzabc"), "{url}");
        assert!(url.ends_with(
            "&x-oss-signature=6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7"
        ));
    }
}
