//! The bar's reference loop alone (see `agentyard_store_sqlite::reference_loop`):
//! `cargo run --release -p agentyard-store-sqlite --example raw_loop -- [N]` (default 20,000).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let rate = agentyard_store_sqlite::reference_loop(dir.path(), n)?;
    println!("raw SQLite loop: {n} tasks claimed and completed, {rate:.0} tasks/s");
    Ok(())
}
