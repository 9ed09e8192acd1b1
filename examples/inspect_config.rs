//! Load lancesync's configuration the way `sync-cli` does and report what it decided.
//!
//! Run: `cargo run --example inspect_config` (try `FRONTEND_TYPE=desktop S3_BACKUP_ENABLED=true ...`).
//! An application that embeds lancesync builds [`LoadOptions`] itself, from its own settings
//! store or a test's map, instead of reading the process.

use std::process::ExitCode;

use lancesync::config::{Config, LoadOptions};

fn main() -> ExitCode {
    let inspection = Config::inspect(&LoadOptions::from_process());
    let config = &inspection.config;
    println!("backend location: {}", config.backend());
    println!(
        "storage mode:     {} (recommended {})",
        config.storage_mode(),
        config.recommended_mode()
    );
    println!("databases under:  {}", config.settings().lancedb.uri);
    for note in config.notes() {
        println!("note: {note}");
    }
    if inspection.problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in &inspection.problems {
        eprintln!("problem: {problem}");
    }
    ExitCode::from(2)
}
