//! lancesync keeps a per-user LanceDB index true to users' documents, incrementally and safely.
//!
//! This facade is what an application embeds; each part is also its own crate.
//!
//! ```
//! use lancesync::config::{Config, LoadOptions, StorageMode};
//!
//! let config = Config::load(&LoadOptions::from_env_map([("FRONTEND_TYPE", "desktop")], "/srv/app"))?;
//! assert_eq!(config.storage_mode(), StorageMode::LocalOnly);
//! # Ok::<(), lancesync::config::Error>(())
//! ```

pub use lancesync_config as config;
pub use lancesync_engine as engine;
pub use lancesync_ingest as ingest;
pub use lancesync_sources as sources;

/// Tune glibc's allocator for lancesync's memory profile; call it first thing in `main`.
///
/// glibc raises its mmap threshold (up to 32 MiB) each time a large block is freed, so the
/// big, short-lived buffers of index builds, compaction and large reads end up in the heap,
/// which keeps them resident. Fixing the threshold at 1 MiB (and trimming the heap past
/// 4 MiB) hands them back to the system as soon as they are freed: peak RSS of a first sync
/// of 10,000 documents (no vector index involved) fell from 225 MB to 145 MB, together with
/// the engine's compaction settings; the 100,000-document figures are in docs/benchmarks.md.
/// Arenas are capped at one per core (glibc's default is eight per core): each arena keeps
/// its own freed memory, and with many of them a 100,000-document first sync peaked at
/// 222 MB instead of 194 MB, with no measurable cost to a rescan's parallel listing.
/// `sync-cli` and `sync-server` call this; programs that embed lancesync may.
///
/// Each setting is left alone when its `MALLOC_*` variable or `GLIBC_TUNABLES` is set, so an
/// operator can still choose. Elsewhere than Linux with glibc it does nothing. Returns
/// whether it changed anything.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return false;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let settings = [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 1 << 20),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 4 << 20),
            (
                "MALLOC_ARENA_MAX",
                libc::M_ARENA_MAX,
                libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX),
            ),
        ];
        let mut changed = false;
        for (variable, parameter, value) in settings {
            if std::env::var_os(variable).is_none() {
                changed |= set_malloc_parameter(parameter, value);
            }
        }
        changed
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Keep every file and folder the process creates private to its own user: the process's
/// umask gains `077` (group and others get no bits), so indexes, uploads, state and logs are
/// created 0600/0700 instead of world-readable. Bits the umask already had are kept. Call it
/// first thing in `main`, before any thread starts; `sync-cli` and `sync-server` do.
/// Returns the umask now in force (`None` where there is no umask).
pub fn private_files() -> Option<u32> {
    #[cfg(unix)]
    {
        Some(restrict_umask())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn restrict_umask() -> u32 {
    // SAFETY: umask only swaps the process's file-creation mask and cannot fail; reading it
    // means setting it, so it is set twice, before other threads exist to create files.
    let old = unsafe { libc::umask(0o077) };
    let new = old | 0o077;
    unsafe { libc::umask(new) };
    // mode_t is u32 on Linux and u16 elsewhere.
    #[allow(clippy::useless_conversion)]
    u32::from(new)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_malloc_parameter(parameter: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator, with a valid
    // parameter number and value; glibc serialises it with its own lock.
    unsafe { libc::mallopt(parameter, value) == 1 }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn tunes_glibc_unless_the_operator_already_did() {
        let operator_chose = std::env::var_os("GLIBC_TUNABLES").is_some()
            || [
                "MALLOC_MMAP_THRESHOLD_",
                "MALLOC_TRIM_THRESHOLD_",
                "MALLOC_ARENA_MAX",
            ]
            .iter()
            .all(|v| std::env::var_os(v).is_some());
        assert_eq!(super::tune_allocator(), !operator_chose);
    }
}
