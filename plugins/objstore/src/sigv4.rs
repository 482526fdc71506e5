//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`): the `Authorization`
//! header form and the presigned-query form.
//!
//! Callers pass the canonical URI already encoded (`uri::encode(key, true)`
//! behind the bucket part) and the query as raw pairs; headers are given as
//! they are sent, and every one of them is signed.

use crate::hash::{hex, hmac_sha256, sha256_hex};
use crate::uri;

/// `x-amz-content-sha256` of a body the signature does not cover.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Who signs, for which region and service, at which time.
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, UTC.
    pub amz_date: &'a str,
}

/// The parts of a request the signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// Encoded path, starting with `/`.
    pub canonical_uri: &'a str,
    pub query: &'a [(String, String)],
    /// Every header sent, `host` included.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or `UNSIGNED_PAYLOAD`.
    pub payload_hash: &'a str,
}

impl Signer<'_> {
    fn date(&self) -> &str {
        &self.amz_date[..8]
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date(),
            self.region,
            self.service
        )
    }

    fn signing_key(&self) -> [u8; 32] {
        let k = format!("AWS4{}", self.credentials.secret_key);
        let k = hmac_sha256(k.as_bytes(), self.date().as_bytes());
        let k = hmac_sha256(&k, self.region.as_bytes());
        let k = hmac_sha256(&k, self.service.as_bytes());
        hmac_sha256(&k, b"aws4_request")
    }

    fn signature(&self, canonical_request: &str) -> String {
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope(),
            sha256_hex(canonical_request.as_bytes())
        );
        hex(&hmac_sha256(&self.signing_key(), to_sign.as_bytes()))
    }

    /// The `Authorization` header value for `req`.
    pub fn authorization(&self, req: &Request) -> String {
        let (canonical, signed) = canonical_request(req, &uri::canonical_query(req.query));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={signed},Signature={}",
            self.credentials.access_key,
            self.scope(),
            self.signature(&canonical)
        )
    }

    /// The query string of a presigned `method` on `canonical_uri` at
    /// `host`, valid for `expires_secs`, `extra` parameters included.
    pub fn presign(
        &self,
        method: &str,
        canonical_uri: &str,
        host: &str,
        expires_secs: u32,
        extra: &[(String, String)],
    ) -> String {
        let mut query: Vec<(String, String)> = extra.to_vec();
        query.extend([
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            (
                "X-Amz-Credential".into(),
                format!("{}/{}", self.credentials.access_key, self.scope()),
            ),
            ("X-Amz-Date".into(), self.amz_date.into()),
            ("X-Amz-Expires".into(), expires_secs.to_string()),
            ("X-Amz-SignedHeaders".into(), "host".into()),
        ]);
        let canonical_query = uri::canonical_query(&query);
        let headers = [("host".to_string(), host.to_string())];
        let req = Request {
            method,
            canonical_uri,
            query: &query,
            headers: &headers,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let (canonical, _) = canonical_request(&req, &canonical_query);
        format!(
            "{canonical_query}&X-Amz-Signature={}",
            self.signature(&canonical)
        )
    }
}

/// The canonical request and the signed-headers list.
fn canonical_request(req: &Request, canonical_query: &str) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v.trim())))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed}\n{}",
        req.method, req.canonical_uri, req.payload_hash
    );
    (canonical, signed)
}

fn collapse_spaces(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut space = false;
    for c in v.chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds (UTC).
pub fn amz_date(unix_secs: u64) -> String {
    crate::time::compact(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked examples of the Amazon S3 API Reference, "Signature
    // Calculations for the Authorization Header" and "Authenticating
    // Requests: Using Query Parameters".
    fn example() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn signer(c: &Credentials) -> Signer<'_> {
        Signer {
            credentials: c,
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn get_object_example() {
        let c = example();
        let headers = h(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let auth = signer(&c).authorization(&Request {
            method: "GET",
            canonical_uri: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY,
        });
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn list_objects_example() {
        let c = example();
        let headers = h(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let query = h(&[("max-keys", "2"), ("prefix", "J")]);
        let auth = signer(&c).authorization(&Request {
            method: "GET",
            canonical_uri: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY,
        });
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn presigned_get_example() {
        let c = example();
        let q = signer(&c).presign(
            "GET",
            "/test.txt",
            "examplebucket.s3.amazonaws.com",
            86_400,
            &[],
        );
        assert!(
            q.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{q}"
        );
        assert!(q.contains(
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        ));
    }
}
