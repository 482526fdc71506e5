//! The replica handshake and the RDB payload framing (`$<len>` and
//! `$EOF:<mark>`) against a peer that answers with arbitrary bytes. The
//! framing reads from a real TCP connection (it sets socket options), so a
//! loopback server sends the input and closes. Input: one byte choosing the
//! reader's buffer size, then everything the server says.
//!
//! What must hold: no panic, no allocation beyond the bytes read, and a
//! payload that ends well is exactly what the server framed: `len` bytes, or
//! the bytes before the mark.
#![no_main]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use redback::replication::{Endpoint, Framing, start_sync};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});
static LISTENER: LazyLock<TcpListener> = LazyLock::new(|| {
    // libFuzzer's C `main` runs instead of Rust's, which would ignore
    // SIGPIPE: without this a write to a socket the peer closed kills us.
    unsafe extern "C" {
        fn signal(sig: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_IGN: usize = 1;
    unsafe { signal(SIGPIPE, SIG_IGN) };
    TcpListener::bind("127.0.0.1:0").expect("a loopback port")
});

/// Sends `said`, closes its side, drains what the client sent until it
/// closes, then resets so no TIME_WAIT piles up over millions of runs.
fn serve(mut conn: TcpStream, said: Vec<u8>) {
    let _ = conn.write_all(&said);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
    let _ = socket_linger_zero(&conn);
}

fn socket_linger_zero(conn: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        onoff: i32,
        linger: i32,
    }
    unsafe extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        onoff: 1,
        linger: 0,
    };
    let r = unsafe {
        setsockopt(
            conn.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            size_of::<Linger>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    let [pick, said @ ..] = data else {
        return;
    };
    // Small reads take the copying path, large ones read in place.
    let buf_len = [1usize, 7, 40, 159, 160, 4096, 300 << 10][*pick as usize % 7];
    let addr = LISTENER.local_addr().expect("listener address");
    let said = said.to_vec();
    let server = std::thread::spawn(move || {
        if let Ok((conn, _)) = LISTENER.accept() {
            serve(conn, said);
        }
    });
    let mut ep = Endpoint::new("fuzz", &addr.to_string());
    ep.connect_timeout = Duration::from_secs(5);
    ep.read_timeout = Duration::from_secs(5);
    RUNTIME.block_on(async {
        let Ok((info, mut stream)) = start_sync(&ep).await else {
            return;
        };
        let mut buf = vec![0u8; buf_len];
        let mut got = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return,
            }
        }
        assert_eq!(stream.delivered(), got.len() as u64);
        let said = &data[1..];
        match info.framing {
            Framing::Sized { len } => {
                assert_eq!(got.len() as u64, len);
                assert!(contains(said, &got), "the payload is not what was said");
            }
            Framing::EofMark => {
                // Some mark announced by a `$EOF:` header follows the payload.
                let followed_by_a_mark = (0..said.len())
                    .filter(|&i| said[i..].starts_with(b"$EOF:") && said.len() >= i + 45)
                    .any(|i| contains(said, &[&got[..], &said[i + 5..i + 45]].concat()));
                assert!(followed_by_a_mark, "the payload does not end at a mark");
            }
        }
    });
    drop(server.join());
});

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
