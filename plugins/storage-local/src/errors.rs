//! How WASI filesystem failures become the contract's `error` variant, worded
//! as one sentence that names the operation and the key. The variant decides
//! whether the host retries, so the mapping is kept in this one place.

use wasip2::filesystem::types::ErrorCode;

use crate::keys::quoted;
use crate::redback::storage::types::Error;

/// `op` is a verb phrase that reads after "cannot", e.g. `"stat"` or
/// `"write the upload of"`; `key` is the object key (or list prefix).
pub(crate) fn fs_error(op: &str, key: &str, code: ErrorCode) -> Error {
    let sentence = format!("cannot {op} {}: {}", quoted(key), code.name());
    match code {
        ErrorCode::NoEntry => Error::NotFound(format!("{sentence} (no such object)")),
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => Error::AccessDenied(
            format!("{sentence}; make the storage directory readable and writable by redback"),
        ),
        // These may clear on their own (space freed, a lock released), so
        // they are the retried kind.
        ErrorCode::InsufficientSpace
        | ErrorCode::Quota
        | ErrorCode::WouldBlock
        | ErrorCode::Busy => Error::Unavailable(format!(
            "{sentence}; the disk or quota may be full, retrying later may work"
        )),
        _ => Error::Other(sentence),
    }
}
