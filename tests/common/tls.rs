//! Certificates for TLS tests, generated in the test (rcgen, ring): a CA,
//! a server certificate for `localhost`, `127.0.0.1` and `redis.test`, a
//! client certificate, a handoff certificate, and a second CA that signed
//! nothing the server shows. Written as PEM files into a temp dir.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// PEM files of one test PKI.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// What redback presents to a target that replicates over TLS.
    pub handoff_cert: PathBuf,
    pub handoff_key: PathBuf,
    /// A CA that signed none of the above.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, name.to_string());
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn leaf(dir: &Path, name: &str, sans: &[&str], issuer: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, name.to_string());
    let cert = params.signed_by(&key, issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (params, key, pem) = ca("redback test CA");
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, pem).unwrap();
        let issuer = Issuer::new(params, key);
        let d = dir.path();
        let (server_cert, server_key) = leaf(
            d,
            "server",
            &["localhost", "127.0.0.1", "redis.test"],
            &issuer,
        );
        let (client_cert, client_key) = leaf(d, "client", &["redback-client"], &issuer);
        let (handoff_cert, handoff_key) = leaf(d, "handoff", &["127.0.0.1"], &issuer);
        let (_, _, other) = ca("another CA");
        let other_ca = d.join("other-ca.crt");
        std::fs::write(&other_ca, other).unwrap();
        Pki {
            ca: ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
            handoff_cert,
            handoff_key,
            other_ca,
            dir,
        }
    }

    /// An `[instance.NAME.tls]` table body trusting this CA, with the client
    /// certificate; `extra` lines are appended.
    pub fn instance_tls(&self, extra: &str) -> String {
        format!(
            "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n{extra}",
            self.ca.display(),
            self.client_cert.display(),
            self.client_key.display()
        )
    }
}
