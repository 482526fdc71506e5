//! The sandbox one plugin instance runs in: its store state, the limits
//! (memory, CPU budget per call, wall-clock timeout per call), the WASI
//! context (no env, no sockets, at most one preopened directory) and guest
//! stdout/stderr routed into `tracing`.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::http_grants::HttpGate;

/// How often the engine's epoch advances; the unit of the CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Guest path of the one preopened directory.
pub const GUEST_ROOT: &str = "/data";

/// The limits a plugin instance runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    /// Guest CPU time a single call may use, counted in epoch ticks seen
    /// while guest code runs (time spent waiting in host I/O does not count).
    pub cpu_per_call: Duration,
    /// Wall-clock time a single call may take, I/O waits included.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_per_call: Duration::from_secs(10),
            call_timeout: Duration::from_secs(300),
        }
    }
}

/// Which limit stopped a call, recorded by the limiter or the epoch
/// callback so the error can name it (the trap itself says little).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tripped {
    Memory { asked_bytes: usize },
    Cpu,
}

/// Everything a plugin instance's store holds.
pub struct StoreState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(super) gate: HttpGate,
    memory_limit: usize,
    ticks_used: u64,
    tick_budget: u64,
    pub(super) tripped: Option<Tripped>,
}

impl StoreState {
    /// Starts a new call's CPU budget.
    pub(super) fn start_call(&mut self) {
        self.ticks_used = 0;
        self.tripped = None;
        self.gate.take_denial();
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.tripped = Some(Tripped::Memory {
                asked_bytes: desired,
            });
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table entry is a pointer-sized slot; hold tables to the same budget.
        Ok(desired.saturating_mul(8) <= self.memory_limit)
    }
}

/// Builds the store for one new instance of plugin `plugin`.
pub(super) fn new_store(
    engine: &Engine,
    plugin: &str,
    limits: &Limits,
    preopen: Option<&Path>,
    gate: HttpGate,
) -> anyhow::Result<Store<StoreState>> {
    let mut wasi = WasiCtxBuilder::new();
    // No env, no args, no stdin (the builder's defaults); sockets off and every
    // address refused, so `wasi:http` through the gate is the only way out.
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .stdout(GuestLog::new(plugin, "stdout"))
        .stderr(GuestLog::new(plugin, "stderr"));
    if let Some(dir) = preopen {
        // Must come before `preopened_dir` (FACTS.md): file I/O then runs on
        // the calling thread instead of a blocking pool, at host speed.
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(dir, GUEST_ROOT, FsPerms::ReadWrite)
            .map_err(|e| anyhow::anyhow!("cannot open directory {}: {e:#}", dir.display()))?;
    }
    let tick_ms = EPOCH_TICK.as_millis().max(1) as u64;
    let state = StoreState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        gate,
        memory_limit: limits.memory_bytes,
        ticks_used: 0,
        tick_budget: (limits.cpu_per_call.as_millis() as u64)
            .div_ceil(tick_ms)
            .max(1),
        tripped: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    store.set_epoch_deadline(1);
    // Called at the first epoch check in guest code after each tick. A call
    // blocked in host I/O sees one callback when it resumes, however long it
    // waited, so the count approximates guest CPU time, not wall time.
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        s.ticks_used += 1;
        if s.ticks_used > s.tick_budget {
            s.tripped = Some(Tripped::Cpu);
            return Err(wasmtime::Error::msg("CPU budget per call exhausted"));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

/// Advances the engine's epoch every `EPOCH_TICK` for as long as the
/// returned guard lives.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("redback-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Guest stdout or stderr: complete lines go to `tracing` with the plugin's
/// name; a line longer than `MAX_LINE` is cut into pieces.
#[derive(Clone)]
struct GuestLog {
    plugin: Arc<str>,
    stream: &'static str,
}

const MAX_LINE: usize = 4096;

impl GuestLog {
    fn new(plugin: &str, stream: &'static str) -> GuestLog {
        GuestLog {
            plugin: plugin.into(),
            stream,
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        tracing::info!(plugin = %self.log.plugin, stream = self.log.stream, "{text}");
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                self.emit();
            } else {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.emit();
                }
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.line.is_empty() {
            self.emit();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}
