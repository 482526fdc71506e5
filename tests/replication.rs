//! The replica handshake against real redis-servers: both payload
//! framings, passwords and ACL users, and the failures an operator meets.

mod common;

use std::time::Duration;

use common::redis::RedisServer;
use redback::config::Secret;
use redback::replication::{Endpoint, ErrorKind, Framing, start_sync};

/// Fills a server with a few thousand keys in two dbs.
fn fill(server: &RedisServer, n: usize) {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..n {
        cmds.push(vec![
            b"SET".to_vec(),
            format!("key:{i}").into_bytes(),
            vec![b'v'; i % 500],
        ]);
    }
    cmds.push(vec![b"SELECT".to_vec(), b"3".to_vec()]);
    for i in 0..n / 10 {
        cmds.push(vec![
            b"RPUSH".to_vec(),
            format!("list:{i}").into_bytes(),
            b"a".to_vec(),
            b"b".to_vec(),
        ]);
    }
    server.pipe(&cmds);
}

fn endpoint(server: &RedisServer) -> Endpoint {
    let mut ep = Endpoint::new("test", &server.addr());
    ep.read_timeout = Duration::from_secs(20);
    ep
}

/// Streams the whole RDB and returns (framing, bytes).
async fn stream(ep: &Endpoint) -> Result<(Framing, Vec<u8>), redback::replication::ReplError> {
    let (info, mut s) = start_sync(ep).await?;
    assert!(
        info.psync && info.rdb_only && info.replid.is_some(),
        "{info:?}"
    );
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(s.delivered(), out.len() as u64);
    Ok((info.framing, out))
}

/// Loads `rdb` into a fresh server and returns its key counts of db 0 and 3.
fn load(rdb: &[u8]) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.rdb"), rdb).unwrap();
    let s = RedisServer::start(&[
        "--dbfilename",
        "seed.rdb",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    (s.dbsize(0), s.dbsize(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_based_and_diskless_payloads_are_whole_rdbs() {
    for diskless in ["no", "yes"] {
        let server = RedisServer::start(&["--repl-diskless-sync", diskless]);
        fill(&server, 3000);
        let (framing, rdb) = stream(&endpoint(&server)).await.unwrap();
        match diskless {
            "yes" => assert_eq!(framing, Framing::EofMark),
            _ => assert_eq!(
                framing,
                Framing::Sized {
                    len: rdb.len() as u64
                }
            ),
        }
        assert_eq!(&rdb[..5], b"REDIS", "diskless={diskless}");
        assert_eq!(load(&rdb), (3000, 300), "diskless={diskless}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_acl_user_log_in_and_wrong_ones_are_named() {
    let server = RedisServer::start(&["--requirepass", "s3cret"]);
    fill(&server, 100);
    server.cli(&["ACL", "SETUSER", "backup", "on", ">bk-pass", "+@all", "~*"]);

    let mut ep = endpoint(&server);
    let e = stream(&ep).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.to_string().contains("requires a password") && e.to_string().contains("password_env"),
        "{e}"
    );

    ep.password = Some(Secret::new("wrong".into()));
    let e = stream(&ep).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        !e.to_string().contains("wrong"),
        "the password leaked into: {e}"
    );

    ep.password = Some(Secret::new("s3cret".into()));
    let (_, rdb) = stream(&ep).await.unwrap();
    assert_eq!(load(&rdb).0, 100);

    ep.username = Some("backup".into());
    ep.password = Some(Secret::new("bk-pass".into()));
    let (_, rdb) = stream(&ep).await.unwrap();
    assert_eq!(load(&rdb).0, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_names_the_instance_and_the_fix() {
    let port = common::free_port();
    let ep = Endpoint::new("orders", &format!("127.0.0.1:{port}"));
    let e = stream(&ep).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Connect);
    let text = e.to_string();
    assert!(
        text.contains("instance 'orders'") && text.contains("check `address`"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_payload_is_an_incomplete_transfer() {
    let server =
        RedisServer::start(&["--repl-diskless-sync", "yes", "--rdb-key-save-delay", "100"]);
    fill(&server, 20000);
    let ep = endpoint(&server);
    let (_, mut s) = start_sync(&ep).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    drop(server); // SIGKILL mid-transfer
    let e = loop {
        match s.read(&mut buf).await {
            Ok(0) => panic!("a cut transfer ended as if complete"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert!(
        e.to_string().contains("incomplete") || e.to_string().contains("closed"),
        "{e}"
    );
}

/// A scripted master: answers the handshake, then sends `payload` behind an
/// EOF mark in pieces of `piece` bytes with pauses between some, so the mark
/// lands across reads; then, if `close`, hangs up, else stays open and
/// silent (as a master does until the replica acknowledges).
async fn scripted_master(
    payload: Vec<u8>,
    piece: usize,
    rdb_only: bool,
    close: bool,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut sock = BufReader::new(sock);
        // Three commands: REPLCONF capa, REPLCONF rdb-only, PSYNC.
        for answer in [
            "+OK\r\n",
            if rdb_only {
                "+OK\r\n"
            } else {
                "-ERR Unrecognized REPLCONF option: rdb-only\r\n"
            },
            "+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n",
        ] {
            let mut line = String::new();
            sock.read_line(&mut line).await.unwrap();
            let argc: usize = line.trim()[1..].parse().unwrap();
            for _ in 0..argc {
                line.clear();
                sock.read_line(&mut line).await.unwrap();
                let len: usize = line.trim()[1..].parse().unwrap();
                let mut arg = vec![0u8; len + 2];
                sock.read_exact(&mut arg).await.unwrap();
            }
            sock.get_mut().write_all(answer.as_bytes()).await.unwrap();
        }
        let mark = b"abcdefghijabcdefghijabcdefghijabcdefghij";
        let mut wire = format!("\n\n$EOF:{}\r\n", std::str::from_utf8(mark).unwrap()).into_bytes();
        wire.extend_from_slice(&payload);
        wire.extend_from_slice(mark);
        let pauses_every = wire.len().div_ceil(piece) / 40 + 1;
        for (i, p) in wire.chunks(piece).enumerate() {
            sock.get_mut().write_all(p).await.unwrap();
            if i % pauses_every == 3 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        if !close {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_eof_mark_split_across_reads_ends_the_payload_exactly() {
    // Bytes that look like the start of the mark, too.
    let mut payload = Vec::new();
    for i in 0..300_000u32 {
        payload.extend_from_slice(if i % 1000 == 0 { b"abcdefghij" } else { b"xyz" });
        payload.extend_from_slice(&i.to_le_bytes());
    }
    let cases = [
        // (piece, rdb_only, close, read size)
        (16_384, true, true, 1 << 20),
        (16_384, true, false, 1 << 20),
        (7_919, false, false, 1 << 20),
        (13, true, false, 1 << 20),
        (16_384, true, false, 64),
        (1_000_003, true, true, 300_000),
    ];
    for (piece, rdb_only, close, read) in cases {
        let (addr, server) = scripted_master(payload.clone(), piece, rdb_only, close).await;
        let mut ep = Endpoint::new("scripted", &addr);
        ep.read_timeout = Duration::from_secs(5);
        let started = std::time::Instant::now();
        let (info, mut s) = start_sync(&ep).await.unwrap();
        assert_eq!(info.framing, Framing::EofMark);
        assert_eq!(info.rdb_only, rdb_only);
        let mut out = Vec::new();
        let mut buf = vec![0u8; read];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let case = format!("piece {piece}, rdb_only {rdb_only}, close {close}, read {read}");
        assert_eq!(out.len(), payload.len(), "{case}");
        assert!(out == payload, "{case}: bytes differ");
        // The end is the mark, not the server hanging up or a timeout.
        assert!(started.elapsed() < Duration::from_secs(4), "{case}");
        server.abort();
    }
}
