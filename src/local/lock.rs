//! Cross-process locks on files in the cache folder, so that exactly one process installs or starts the emulator.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::{io_err, LocalError};

/// Holds an exclusive lock until dropped. The OS releases it if the process dies, so a crashed
/// CLI never leaves the others waiting.
#[derive(Debug)]
pub(crate) struct Guard {
    _file: File,
}

/// Takes the lock at `path`, telling `progress` when another process holds it (then waits).
pub(crate) fn acquire(
    path: &Path,
    progress: &mut dyn FnMut(&str),
    what: &str,
) -> Result<Guard, LocalError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        // Another user's lock file in a shared temp dir: a read-only handle can still be locked.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(path).map_err(io_err("open the lock file", path))?
        }
        Err(e) => return Err(io_err("open the lock file", path)(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            progress(&format!(
                "another securecart process is {what}; waiting for it"
            ));
            file.lock().map_err(io_err("lock", path))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock", path)(e)),
    }
    Ok(Guard { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("sc-lock-test-{}", std::process::id()));
        let path = dir.join("x.lock");
        let first = acquire(&path, &mut |_| {}, "testing").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let mut said = Vec::new();
            let g = acquire(&p, &mut |m| said.push(m.to_string()), "testing").unwrap();
            tx.send(()).unwrap();
            drop(g);
            said
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "lock was not exclusive");
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        let said = waiter.join().unwrap();
        assert_eq!(
            said,
            ["another securecart process is testing; waiting for it"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
