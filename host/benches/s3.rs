//! storage-s3 throughput: 1 GiB uploaded and downloaded through the plugin
//! (Wasm, `wasi:http`) to a real S3 server on loopback (s3s-fs), against a
//! native client doing the same transfer in the same run: the same
//! multipart upload (same part size, SigV4 from the same `objstore` code)
//! and one streamed GET, over plain `std::net` HTTP/1.1. Target: the
//! plugin at least 0.8x the native client.
//!
//! Run with `make bench-s3`; `REDBACK_BENCH_S3_MIB` sets the size
//! (default 1024).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use objstore::sigv4::{self, Credentials, Signer, UNSIGNED_PAYLOAD};
use objstore::{uri, xml};
use redback::plugin::PluginHost;

const CHUNK: usize = 8 << 20;
const PART_MIB: usize = 16;

/// Incompressible chunks, made before any clock starts and reused in turn.
fn pool() -> Vec<Vec<u8>> {
    (0..4).map(|i| common::noise(i + 1, CHUNK)).collect()
}

/// A native S3 client: SigV4 headers over one HTTP/1.1 connection per
/// request, as the plugin does.
struct Native {
    port: u16,
    creds: Credentials,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    length: Option<u64>,
}

impl Native {
    fn request(&self, method: &str, key: &str, query: &[(&str, &str)], body: &[u8]) -> Reply {
        let authority = format!("127.0.0.1:{}", self.port);
        let path = format!("/{BUCKET}/{}", uri::encode(key, true));
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let amz_date = sigv4::amz_date(secs);
        let mut headers = vec![
            ("x-amz-date".to_string(), amz_date.clone()),
            (
                "x-amz-content-sha256".to_string(),
                UNSIGNED_PAYLOAD.to_string(),
            ),
            ("content-length".to_string(), body.len().to_string()),
        ];
        let mut signed = headers.clone();
        signed.push(("host".into(), authority.clone()));
        let auth = Signer {
            credentials: &self.creds,
            region: "us-east-1",
            service: "s3",
            amz_date: &amz_date,
        }
        .authorization(&sigv4::Request {
            method,
            canonical_uri: &path,
            query: &query,
            headers: &signed,
            payload_hash: UNSIGNED_PAYLOAD,
        });
        headers.push(("authorization".into(), auth));
        headers.push(("host".into(), authority.clone()));
        let q = uri::canonical_query(&query);
        let target = if q.is_empty() {
            path
        } else {
            format!("{path}?{q}")
        };
        let mut s = TcpStream::connect(&authority).unwrap();
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut reader = BufReader::with_capacity(1 << 20, s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok());
        Reply {
            status,
            headers,
            reader,
            length,
        }
    }
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn body(mut self) -> String {
        let mut s = String::new();
        match self.length {
            Some(n) => {
                let mut buf = vec![0; n as usize];
                self.reader.read_exact(&mut buf).unwrap();
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            None => {
                self.reader.read_to_string(&mut s).unwrap();
            }
        }
        s
    }
}

fn native_upload(n: &Native, key: &str, chunks: usize, pool: &[Vec<u8>]) -> Duration {
    let started = Instant::now();
    let r = n.request("POST", key, &[("uploads", "")], &[]);
    assert_eq!(r.status, 200);
    let id = xml::text(&r.body(), "UploadId").unwrap();
    let mut etags = Vec::new();
    let mut part = Vec::with_capacity(PART_MIB << 20);
    let send = |part: &mut Vec<u8>, etags: &mut Vec<String>| {
        let number = (etags.len() + 1).to_string();
        let r = n.request(
            "PUT",
            key,
            &[("partNumber", &number), ("uploadId", &id)],
            part,
        );
        assert_eq!(r.status, 200);
        etags.push(r.header("etag").unwrap().to_string());
        part.clear();
    };
    for i in 0..chunks {
        part.extend_from_slice(&pool[i % pool.len()]);
        if part.len() >= PART_MIB << 20 {
            send(&mut part, &mut etags);
        }
    }
    if !part.is_empty() {
        send(&mut part, &mut etags);
    }
    let mut doc = String::from("<CompleteMultipartUpload>");
    for (i, e) in etags.iter().enumerate() {
        doc.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            xml::escape(e)
        ));
    }
    doc.push_str("</CompleteMultipartUpload>");
    let r = n.request("POST", key, &[("uploadId", &id)], doc.as_bytes());
    assert_eq!(r.status, 200);
    started.elapsed()
}

async fn plugin_upload(
    storage: &dyn redback::storage::Storage,
    key: &str,
    chunks: usize,
    pool: &[Vec<u8>],
) -> Duration {
    let started = Instant::now();
    let mut up = storage.start_upload(key).await.unwrap();
    for i in 0..chunks {
        up.write(&pool[i % pool.len()]).await.unwrap();
    }
    up.finish().await.unwrap();
    started.elapsed()
}

async fn plugin_download(
    storage: &dyn redback::storage::Storage,
    key: &str,
    expect: u64,
) -> Duration {
    let started = Instant::now();
    let mut d = storage.open_download(key, 0, None).await.unwrap();
    let mut total = 0u64;
    loop {
        let b = d.read(CHUNK as u32).await.unwrap();
        if b.is_empty() {
            break;
        }
        total += b.len() as u64;
    }
    assert_eq!(total, expect);
    started.elapsed()
}

/// Writes dirty pages out, so a transfer does not pay for the one before.
fn flush() {
    // SAFETY: sync has no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// CPU time used so far by this process (the plugin host or the native
/// client; the server is a separate process).
fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn native_download(n: &Native, key: &str, expect: u64) -> Duration {
    let started = Instant::now();
    let mut r = n.request("GET", key, &[], &[]);
    assert_eq!(r.status, 200);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let got = r.reader.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        total += got as u64;
    }
    assert_eq!(total, expect);
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: usize = std::env::var("REDBACK_BENCH_S3_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let chunks = (mib << 20).div_ceil(CHUNK);
    let size = (chunks * CHUNK) as u64;
    let server = S3Server::start();

    let host = PluginHost::new(None).unwrap();
    let plugin = common::load(&host, "storage-s3");
    let secret = common::secret_file(server.dir.path(), SECRET_KEY);
    let part = PART_MIB.to_string();
    let endpoint = server.endpoint();
    let settings = [
        ("endpoint", endpoint.as_str()),
        ("bucket", BUCKET),
        ("access_key_id", ACCESS_KEY),
        ("secret_access_key_file", secret.to_str().unwrap()),
        ("part_size_mib", part.as_str()),
    ];
    let cfg = common::storage_config("s3", "storage-s3", &settings, server.dir.path());
    let storage = common::open(&host, &plugin, &cfg, None).await.unwrap();
    let native = Native {
        port: server.port,
        creds: Credentials {
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        },
    };

    let pool = pool();
    let mut rows = Vec::new();
    for round in 0..3 {
        let native_key = format!("bench/native-{round}");
        let plugin_key = format!("bench/plugin-{round}");
        // Each transfer starts with no dirty pages left by the one before
        // (writeback would slow whichever ran next), and the side that
        // goes first alternates.
        let mut up = [Duration::ZERO; 2];
        let mut down = [(Duration::ZERO, Duration::ZERO); 2];
        for side in [round % 2, 1 - round % 2] {
            flush();
            up[side] = if side == 0 {
                native_upload(&native, &native_key, chunks, &pool)
            } else {
                plugin_upload(&*storage, &plugin_key, chunks, &pool).await
            };
        }
        for side in [round % 2, 1 - round % 2] {
            flush();
            let c = cpu();
            let took = if side == 0 {
                native_download(&native, &native_key, size)
            } else {
                plugin_download(&*storage, &plugin_key, size).await
            };
            down[side] = (took, cpu() - c);
        }
        let [(nd, ndc), (pd, pdc)] = down;
        let [nu, pu] = up;
        eprintln!(
            "round {round}: upload plugin {:.2} s native {:.2} s; download plugin {:.2} s \
             (cpu {:.2} s) native {:.2} s (cpu {:.2} s)",
            pu.as_secs_f64(),
            nu.as_secs_f64(),
            pd.as_secs_f64(),
            pdc.as_secs_f64(),
            nd.as_secs_f64(),
            ndc.as_secs_f64()
        );
        rows.push((pu, nu, pd, nd));
        for k in [native_key, plugin_key] {
            storage.delete(&k).await.unwrap();
        }
    }
    let median = |f: fn(&(Duration, Duration, Duration, Duration)) -> Duration| {
        let mut v: Vec<Duration> = rows.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let rate = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!();
    println!(
        "storage-s3 benchmark: {} MiB to s3s-fs on loopback, parts of {PART_MIB} MiB, median of 3",
        size >> 20
    );
    println!(
        "{:<10} {:>14} {:>14} {:>7} {:>8}",
        "transfer", "plugin", "native", "ratio", "target"
    );
    for (name, p, n) in [
        ("upload", median(|r| r.0), median(|r| r.1)),
        ("download", median(|r| r.2), median(|r| r.3)),
    ] {
        println!(
            "{name:<10} {:>9.0} MB/s {:>9.0} MB/s {:>6.2}x {:>8}",
            rate(p),
            rate(n),
            rate(p) / rate(n),
            ">=0.8x"
        );
    }
}
