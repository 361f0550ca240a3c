//! One open store per database file: a second open, in this process or in another, fails with
//! an error naming the file, until the first closes.

use std::path::PathBuf;
use std::process::Command;

use agentyard_store_sqlite::{SqliteOptions, SqliteStore};

use super::{db, open};

#[test]
fn a_second_open_of_the_same_file_fails_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let first = open(&path);
    let err = SqliteStore::open(&path, SqliteOptions::default()).expect_err("refused");
    let message = err.to_string();
    assert!(message.contains(&format!("{} is in use", path.display())), "{message}");
    assert!(message.contains("another agentyard"), "{message}");
    assert!(message.contains("yard.db.lock"), "{message}");
    drop(first);
    let again = SqliteStore::open(&path, SqliteOptions::default()).expect("free once the first closed");
    drop(again);
}

/// With `AGENTYARD_LOCK_DB` set, this is the child of `another_process_cannot_open_it`: it tries
/// to open the store and prints what happened. Without it, it does nothing.
#[test]
fn lock_child_opens_the_store() {
    let Some(path) = std::env::var_os("AGENTYARD_LOCK_DB") else {
        return;
    };
    match SqliteStore::open(PathBuf::from(path), SqliteOptions::default()) {
        Ok(_) => println!("\nLOCK-CHILD opened"),
        Err(e) => println!("\nLOCK-CHILD refused: {e}"),
    }
}

fn open_in_a_child(path: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "lock::lock_child_opens_the_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AGENTYARD_LOCK_DB", path)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("LOCK-CHILD "))
        .unwrap_or_else(|| panic!("the child said nothing: {stdout}"))
        .to_owned()
}

#[test]
fn another_process_cannot_open_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let first = open(&path);
    let said = open_in_a_child(&path);
    assert!(said.starts_with("refused") && said.contains("is in use"), "{said}");
    assert!(
        said.contains(&format!("process {}", std::process::id())),
        "names the process holding it: {said}"
    );
    drop(first);
    assert_eq!(open_in_a_child(&path), "opened");
}
