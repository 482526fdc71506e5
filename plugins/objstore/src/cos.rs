//! Tencent COS request signatures (`q-sign-algorithm=sha1`, COS API
//! "Request Signature"), in the `Authorization` header form and the
//! presigned-query form.
//!
//! The signature covers the method, the *decoded* path, the query
//! parameters and the headers the client chooses (named in
//! `q-url-param-list` and `q-header-list`), within a key time window:
//!
//! ```text
//! SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
//! HttpString   = method "\n" path "\n" params "\n" headers "\n"
//! StringToSign = "sha1\n" KeyTime "\n" hex(SHA1(HttpString)) "\n"
//! Signature    = hex(HMAC-SHA1(SignKey, StringToSign))
//! ```

use crate::hash::{hex, hmac_sha1, sha1_hex};
use crate::sigv4::Credentials;
use crate::uri;

/// Who signs, and when the signature is valid (Unix seconds).
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    pub start: u64,
    pub end: u64,
}

/// The parts of a request the signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, decoded (raw UTF-8), starting with `/`.
    pub path: &'a str,
    /// Every query parameter is signed.
    pub params: &'a [(String, String)],
    /// The headers to sign (`host` among them).
    pub headers: &'a [(String, String)],
}

/// `k1=v1&k2=v2` and `k1;k2` of pairs: names lowercased and encoded,
/// values encoded, sorted by name.
fn signed_list(pairs: &[(String, String)]) -> (String, String) {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| {
            (
                uri::encode(&k.to_ascii_lowercase(), false),
                uri::encode(v, false),
            )
        })
        .collect();
    enc.sort();
    let joined = enc
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let names = enc
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (joined, names)
}

impl Signer<'_> {
    fn key_time(&self) -> String {
        format!("{};{}", self.start, self.end)
    }

    /// The signature fields, in order, as (name, value) pairs.
    fn fields(&self, req: &Request) -> Vec<(&'static str, String)> {
        let key_time = self.key_time();
        let (params, param_list) = signed_list(req.params);
        let (headers, header_list) = signed_list(req.headers);
        let http_string = format!(
            "{}\n{}\n{params}\n{headers}\n",
            req.method.to_ascii_lowercase(),
            req.path
        );
        let to_sign = format!("sha1\n{key_time}\n{}\n", sha1_hex(http_string.as_bytes()));
        let sign_key = hex(&hmac_sha1(
            self.credentials.secret_key.as_bytes(),
            key_time.as_bytes(),
        ));
        let signature = hex(&hmac_sha1(sign_key.as_bytes(), to_sign.as_bytes()));
        vec![
            ("q-sign-algorithm", "sha1".into()),
            ("q-ak", self.credentials.access_key.clone()),
            ("q-sign-time", key_time.clone()),
            ("q-key-time", key_time),
            ("q-header-list", header_list),
            ("q-url-param-list", param_list),
            ("q-signature", signature),
        ]
    }

    /// The `Authorization` header value for `req`.
    pub fn authorization(&self, req: &Request) -> String {
        self.fields(req)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The signature as query parameters (a presigned URL's query, to
    /// which the request's own parameters are added).
    pub fn presign_query(&self, req: &Request) -> String {
        self.fields(req)
            .iter()
            .map(|(k, v)| format!("{k}={}", uri::encode(v, false)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked examples of the COS API documentation, "Request
    // Signature" (cloud.tencent.com/document/product/436/7778), and the
    // values cos-python-sdk-v5 1.9.44 computes for the same requests.
    fn example() -> Credentials {
        Credentials {
            access_key: "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q".into(),
            secret_key: "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz".into(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const HOST: &str = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com";

    fn put_headers(date: bool) -> Vec<(String, String)> {
        let mut h = pairs(&[
            ("Host", HOST),
            ("Content-Type", "text/plain"),
            ("Content-Length", "13"),
            ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
            ("x-cos-acl", "private"),
            ("x-cos-grant-read", "uin=\"100000000011\""),
        ]);
        if date {
            h.push(("Date".into(), "Thu, 16 May 2019 06:45:51 GMT".into()));
        }
        h
    }

    #[test]
    fn put_object_example() {
        let c = example();
        let s = Signer {
            credentials: &c,
            start: 1557989151,
            end: 1557996351,
        };
        let headers = put_headers(true);
        let req = Request {
            method: "PUT",
            path: "/exampleobject(腾讯云)",
            params: &[],
            headers: &headers,
        };
        assert_eq!(
            s.authorization(&req),
            "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q\
             &q-sign-time=1557989151;1557996351&q-key-time=1557989151;1557996351\
             &q-header-list=content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read\
             &q-url-param-list=&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172"
        );
        // The SDK does not sign Date.
        let headers = put_headers(false);
        let req = Request {
            headers: &headers,
            ..req
        };
        assert!(
            s.authorization(&req)
                .ends_with("q-signature=fc4e4717b501da12715d5fc84a4880a87ad2b7ab")
        );
    }

    #[test]
    fn get_object_with_parameters_example() {
        let c = example();
        let s = Signer {
            credentials: &c,
            start: 1557989753,
            end: 1557996953,
        };
        let params = pairs(&[
            ("response-content-type", "application/octet-stream"),
            ("response-cache-control", "max-age=600"),
        ]);
        let headers = pairs(&[("Date", "Thu, 16 May 2019 06:55:53 GMT"), ("Host", HOST)]);
        let req = Request {
            method: "GET",
            path: "/exampleobject(腾讯云)",
            params: &params,
            headers: &headers,
        };
        let auth = s.authorization(&req);
        assert!(auth.contains("&q-header-list=date;host&"));
        assert!(auth.contains("&q-url-param-list=response-cache-control;response-content-type&"));
        assert!(auth.ends_with("q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012"));

        // The SDK's presigned URL for the request without Date.
        let headers = pairs(&[("host", HOST)]);
        let req = Request {
            headers: &headers,
            ..req
        };
        assert_eq!(
            s.presign_query(&req),
            "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q\
             &q-sign-time=1557989753%3B1557996953&q-key-time=1557989753%3B1557996953\
             &q-header-list=host&q-url-param-list=response-cache-control%3Bresponse-content-type\
             &q-signature=cf18ded2f669fcafa4b98e02c2a3fdb2b2e55c43"
        );
    }
}
