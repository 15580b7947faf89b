//! The one loader for files a blueprint names (`code`, `user_data_file`,
//! `definition_file`): the path is relative, stays inside the blueprint's folder after
//! `..` and symlinks are resolved, names regular files only, and is read with a size cap,
//! so a blueprint from a pull request cannot read the host's files or exhaust memory.
//!
//! Checking and opening are one operation: every file is opened relative to a handle of
//! the blueprint's folder by `cap-std`, which on Linux asks the kernel for `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (and elsewhere, or where a sandbox refuses
//! `openat2`, resolves one component at a time without following a symlink out). A path
//! that was checked and then swapped for a symlink out of the folder is refused by the
//! open itself, and what was opened is then looked at through its own handle (`fstat`).
//!
//! Errors are plain sentences without the field name: callers locate them at the field.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions};

/// EC2 takes at most 16 KB of user data, counted before base64 encoding:
/// <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html>.
pub const USER_DATA_MAX: usize = 16 * 1024;

/// Step Functions takes state machine definitions up to 1 MB (the definition size quota):
/// <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>.
pub const DEFINITION_MAX: usize = 1024 * 1024;

/// Lambda takes a zip of at most 50 MB uploaded directly, and 250 MB unzipped:
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>.
pub const CODE_ZIP_MAX: usize = 50 * 1024 * 1024;
pub const CODE_UNZIPPED_MAX: u64 = 250 * 1024 * 1024;

/// One file of a code folder: its name in the zip, where it is, and its executable bit.
#[derive(Debug, Clone)]
pub struct CodeFile {
    pub name: String,
    pub executable: bool,
    pub size: u64,
    /// The blueprint's folder, and the file's path inside it: read again through the same
    /// kind of confined open when the code is zipped.
    base: Arc<Dir>,
    path: PathBuf,
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{} KB", bytes / 1024)
    }
}

fn outside(shown: &str) -> String {
    format!("`{shown}` leads outside the blueprint's folder: files must stay inside it")
}

fn not_regular(shown: &str) -> String {
    format!("`{shown}` is not a regular file (a device, pipe or socket could never end)")
}

/// A handle of the blueprint's folder: every file is opened beneath it.
fn base(dir: &Path) -> Result<Dir, String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // The folder itself is where the user pointed securecart: it is opened as given.
    Dir::open_ambient_dir(dir, cap_std::ambient_authority())
        .map_err(|e| format!("cannot open the blueprint's folder: {e}"))
}

/// Why `rel` may not even be tried: it is empty, holds control characters, is absolute or
/// climbs out with `..`. Checked on the text, so a path out of the folder is refused the
/// same way whether or not what it names exists (the open would refuse it too).
fn check_text(rel: &str) -> Result<(), String> {
    let p = Path::new(rel);
    if rel.trim().is_empty() {
        return Err("the path is empty".into());
    }
    // Not echoed: a NUL or escape sequence would reach the terminal as is.
    if rel.chars().any(char::is_control) {
        return Err("the path holds a control character (a NUL, tab or line break)".into());
    }
    if p.has_root() || p.components().any(|c| matches!(c, Component::Prefix(_))) {
        return Err(format!(
            "`{rel}` is an absolute path: name a file inside the blueprint's folder, relative to it"
        ));
    }
    let mut depth: usize = 0;
    for c in p.components() {
        match c {
            Component::ParentDir => depth = depth.checked_sub(1).ok_or_else(|| outside(rel))?,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    Ok(())
}

/// cap-std reports a path that resolves outside the folder (the kernel's `EXDEV` from
/// `openat2`, or its own component walk) as `PermissionDenied` with no OS error code
/// (`cap_primitives::fs::errors::escape_attempt`); a real permission problem has its
/// `EACCES`/`EPERM`.
fn escaped(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

/// Opens `rel` beneath `base` for reading, and what was opened with its metadata (taken
/// from the open handle, so it describes the file that will be read). `shown` is how
/// errors name it.
fn open_beneath(
    base: &Dir,
    rel: &Path,
    shown: &str,
) -> Result<(std::fs::File, std::fs::Metadata), String> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        // A FIFO would block the open itself until a writer came; non-blocking, it opens
        // at once and is then refused as not a regular file. No terminal may become ours.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = base
        .open_with(rel, &opts)
        .map_err(|e| match e.kind() {
            _ if escaped(&e) => outside(shown),
            std::io::ErrorKind::NotFound => {
                format!("cannot read `{shown}`: there is no such file in the blueprint's folder")
            }
            _ => format!("cannot read `{shown}`: {e}"),
        })?
        .into_std();
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    Ok((file, meta))
}

/// Reads an opened regular file, at most `cap` bytes: the cap holds while reading, so a
/// file that grows meanwhile still stops there.
fn read_capped(
    file: std::fs::File,
    meta: &std::fs::Metadata,
    shown: &str,
    cap: usize,
    limit: &str,
) -> Result<Vec<u8>, String> {
    if meta.is_dir() {
        return Err(format!("`{shown}` is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(not_regular(shown));
    }
    let mut bytes = Vec::new();
    // One byte over the cap tells "too large" without reading the rest.
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if bytes.len() > cap {
        return Err(format!(
            "`{shown}` is larger than {}, {limit}",
            human(cap as u64)
        ));
    }
    Ok(bytes)
}

/// The bytes of the file `rel` inside the blueprint's folder `dir`, at most `cap`;
/// `limit` says whose limit `cap` is.
pub fn read(dir: &Path, rel: &str, cap: usize, limit: &str) -> Result<Vec<u8>, String> {
    check_text(rel)?;
    let (file, meta) = open_beneath(&base(dir)?, Path::new(rel), rel)?;
    read_capped(file, &meta, rel, cap, limit)
}

/// Like [`read`], for text: the file must be UTF-8.
pub fn read_text(dir: &Path, rel: &str, cap: usize, limit: &str) -> Result<String, String> {
    String::from_utf8(read(dir, rel, cap, limit)?).map_err(|e| {
        format!(
            "`{rel}` is not UTF-8 text (invalid bytes at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Reads one file listed by [`code_files`].
pub fn read_code_file(f: &CodeFile) -> Result<Vec<u8>, String> {
    let (file, meta) = open_beneath(&f.base, &f.path, &f.name)?;
    read_capped(
        file,
        &meta,
        &f.name,
        CODE_UNZIPPED_MAX as usize,
        "the most Lambda takes unzipped",
    )
}

/// The files of Lambda code `rel` (a file, or a folder walked recursively), sorted by
/// name, leaving out names `skipped` says are never part of what runs. Every entry is
/// opened like a single file, beneath the blueprint's folder (a symlink may point
/// elsewhere inside it, never out), and must be a regular file or a folder; the total
/// stays within what Lambda takes unzipped, and a folder must hold some file.
pub fn code_files(
    dir: &Path,
    rel: &str,
    skipped: impl Fn(&str) -> bool,
) -> Result<Vec<CodeFile>, String> {
    check_text(rel)?;
    let base = Arc::new(base(dir)?);
    let (root, meta) = open_beneath(&base, Path::new(rel), rel)?;
    let mut out = Vec::new();
    if !meta.is_dir() {
        if !meta.is_file() {
            return Err(format!("`{rel}` is not a regular file or a folder"));
        }
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push(CodeFile {
            name,
            executable: executable(&meta),
            size: meta.len(),
            base,
            path: PathBuf::from(rel),
        });
        return Ok(out);
    }
    let mut total: u64 = 0;
    // Folders by device and inode: a symlink back up the tree would be walked forever.
    let mut seen = HashSet::from([file_id(&meta)]);
    // Each folder's names are listed through the handle that was opened (and checked)
    // for it, then the handle is closed: a wide tree holds one descriptor at a time.
    let mut stack = vec![(String::new(), names_in(root, rel)?)];
    while let Some((prefix, names)) = stack.pop() {
        for name in names {
            let lossy = name.to_string_lossy();
            if skipped(&lossy) {
                continue;
            }
            let zip_name = format!("{prefix}{lossy}");
            let shown = format!("{rel}/{zip_name}");
            // Opened by its real name (the zip and messages take the readable form).
            let path = Path::new(rel).join(prefix.as_str()).join(&name);
            let (file, meta) = open_beneath(&base, &path, &shown)?;
            if meta.is_dir() {
                if file_id(&meta).is_some_and(|id| !seen.insert(Some(id))) {
                    return Err(format!(
                        "`{shown}` is a folder already included (a symlink loop?)"
                    ));
                }
                stack.push((format!("{zip_name}/"), names_in(file, &shown)?));
            } else if meta.is_file() {
                total += meta.len();
                if total > CODE_UNZIPPED_MAX {
                    return Err(format!(
                        "`{rel}` holds more than {}, more than Lambda takes unzipped",
                        human(CODE_UNZIPPED_MAX)
                    ));
                }
                out.push(CodeFile {
                    name: zip_name,
                    executable: executable(&meta),
                    size: meta.len(),
                    base: base.clone(),
                    path,
                });
            } else {
                return Err(not_regular(&shown));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("the folder `{rel}` holds no files"));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The names in an opened folder.
fn names_in(folder: std::fs::File, shown: &str) -> Result<Vec<std::ffi::OsString>, String> {
    let err = |e: std::io::Error| format!("cannot read `{shown}`: {e}");
    let mut names = Vec::new();
    for entry in Dir::from_std_file(folder).entries().map_err(err)? {
        names.push(entry.map_err(err)?.file_name());
    }
    Ok(names)
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

/// Without inode numbers a symlink loop ends where the system stops following symlinks
/// in one path (`ELOOP`), as an error.
#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    false
}

/// For kinds' tests that validate whole blueprints: a folder holding a one-file code
/// folder for every `code: X` the text names, since validating now looks at the code.
#[cfg(test)]
pub fn folder_with_code(text: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for (i, _) in text.match_indices("code: ") {
        let rest = &text[i + "code: ".len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',' || c == '}')
            .unwrap_or(rest.len());
        let code = &rest[..end];
        if !code.is_empty() && !code.contains("${") {
            std::fs::create_dir_all(d.path().join(code)).expect("code folder");
            std::fs::write(d.path().join(code).join("app.py"), "x = 1\n").expect("code");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bp/fn/lib")).unwrap();
        std::fs::write(d.path().join("bp/fn/app.py"), "x = 1\n").unwrap();
        std::fs::write(d.path().join("bp/fn/lib/util.py"), "y = 2\n").unwrap();
        std::fs::write(d.path().join("bp/web.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(d.path().join("secret.txt"), "outside\n").unwrap();
        d
    }

    #[test]
    fn reads_files_inside_the_folder() {
        let d = folder();
        let bp = d.path().join("bp");
        assert_eq!(read_text(&bp, "web.sh", 100, "x").unwrap(), "#!/bin/sh\n");
        assert_eq!(
            read_text(&bp, "fn/../web.sh", 100, "x").unwrap(),
            "#!/bin/sh\n"
        );
        let names: Vec<String> = code_files(&bp, "fn", |_| false)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["app.py", "lib/util.py"]);
    }

    #[test]
    fn refuses_paths_out_of_the_folder() {
        let d = folder();
        let bp = d.path().join("bp");
        let abs = d.path().join("secret.txt").display().to_string();
        assert!(read(&bp, &abs, 100, "x")
            .unwrap_err()
            .contains("absolute path"));
        for rel in ["../secret.txt", "fn/../../secret.txt", "../nothing-here"] {
            let e = read(&bp, rel, 100, "x").unwrap_err();
            assert!(
                e.contains("leads outside the blueprint's folder"),
                "{rel}: {e}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.path().join("secret.txt"), bp.join("link.txt")).unwrap();
            let e = read(&bp, "link.txt", 100, "x").unwrap_err();
            assert!(e.contains("leads outside"), "{e}");
            std::os::unix::fs::symlink(d.path().join("secret.txt"), bp.join("fn/out.py")).unwrap();
            let e = code_files(&bp, "fn", |_| false).unwrap_err();
            assert!(e.contains("`fn/out.py` leads outside"), "{e}");
        }
    }

    /// The refusal comes from the open beneath the folder's handle, not from a check
    /// before it: `open_beneath` is called here with no check at all, on names whose text
    /// looks harmless, and still cannot leave the folder.
    #[cfg(unix)]
    #[test]
    fn the_open_itself_refuses_symlinks_out() {
        use std::os::unix::fs::symlink;
        let d = folder();
        let bp = d.path().join("bp");
        symlink("../secret.txt", bp.join("link.txt")).unwrap();
        symlink(d.path().join("secret.txt"), bp.join("abs.txt")).unwrap();
        symlink("..", bp.join("up")).unwrap();
        symlink("/proc/self/root/etc/hostname", bp.join("magic")).unwrap();
        let base = base(&bp).unwrap();
        for name in ["link.txt", "abs.txt", "up/secret.txt", "magic"] {
            assert!(check_text(name).is_ok(), "{name} looks harmless as text");
            let e = open_beneath(&base, Path::new(name), name).unwrap_err();
            assert_eq!(e, outside(name));
        }
        // Symlinks that stay inside the folder are followed, from any depth.
        symlink("web.sh", bp.join("alias.sh")).unwrap();
        symlink("../web.sh", bp.join("fn/web.sh")).unwrap();
        assert_eq!(read_text(&bp, "alias.sh", 100, "x").unwrap(), "#!/bin/sh\n");
        let names: Vec<String> = code_files(&bp, "fn", |_| false)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["app.py", "lib/util.py", "web.sh"]);
    }

    /// A name swapped between a symlink inside the folder and one out of it, as fast as
    /// another thread can rename: every read gives the inside file or a refusal, never the
    /// outside file (a check before the open would let some through).
    #[cfg(unix)]
    #[test]
    fn a_symlink_swapped_in_while_reading_is_refused() {
        use std::os::unix::fs::symlink;
        use std::sync::atomic::{AtomicBool, Ordering};
        let d = folder();
        let bp = d.path().join("bp");
        symlink("web.sh", bp.join("swap.sh")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (bp, stop) = (bp.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut flips = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let target = if flips.is_multiple_of(2) {
                        "../secret.txt"
                    } else {
                        "web.sh"
                    };
                    let tmp = bp.join("swap.tmp");
                    let _ = std::fs::remove_file(&tmp);
                    symlink(target, &tmp).unwrap();
                    // rename(2) replaces the name atomically: it always names a symlink.
                    std::fs::rename(&tmp, bp.join("swap.sh")).unwrap();
                    flips += 1;
                }
                flips
            })
        };
        let (mut inside, mut refused) = (0, 0);
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(500) {
            match read_text(&bp, "swap.sh", 100, "x") {
                Ok(text) => {
                    assert_eq!(text, "#!/bin/sh\n", "read outside the folder");
                    inside += 1;
                }
                Err(e) => {
                    assert_eq!(e, outside("swap.sh"));
                    refused += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let flips = flipper.join().unwrap();
        assert!(
            inside + refused > 0 && flips > 0,
            "{inside} {refused} {flips}"
        );
    }

    #[test]
    fn caps_sizes_and_refuses_special_files() {
        let d = folder();
        let bp = d.path().join("bp");
        std::fs::write(bp.join("big.sh"), vec![b'a'; 2049]).unwrap();
        let e = read(&bp, "big.sh", 2048, "more than AWS takes").unwrap_err();
        assert_eq!(e, "`big.sh` is larger than 2 KB, more than AWS takes");
        assert!(read(&bp, "big.sh", 2049, "x").is_ok());
        assert!(read(&bp, "fn", 100, "x")
            .unwrap_err()
            .contains("is a folder"));
        std::fs::write(bp.join("latin1.sh"), b"caf\xe9").unwrap();
        assert!(read_text(&bp, "latin1.sh", 100, "x")
            .unwrap_err()
            .contains("not UTF-8 text (invalid bytes at offset 3)"));
        #[cfg(unix)]
        {
            // A FIFO would block a reader forever; /dev/zero would never end.
            let fifo = bp.join("pipe");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                let e = read(&bp, "pipe", 100, "x").unwrap_err();
                assert!(e.contains("not a regular file"), "{e}");
                std::fs::rename(&fifo, bp.join("fn/pipe")).unwrap();
                let e = code_files(&bp, "fn", |_| false).unwrap_err();
                assert_eq!(e, not_regular("fn/pipe"));
            }
            std::os::unix::fs::symlink("/dev/zero", bp.join("zero")).unwrap();
            assert!(read(&bp, "zero", 100, "x")
                .unwrap_err()
                .contains("leads outside"));
        }
    }

    #[test]
    fn missing_and_empty_code_fail() {
        let d = folder();
        let bp = d.path().join("bp");
        std::fs::create_dir_all(bp.join("empty/__pycache__")).unwrap();
        std::fs::write(bp.join("empty/__pycache__/x.pyc"), "").unwrap();
        let e = code_files(&bp, "empty", |n| n == "__pycache__").unwrap_err();
        assert_eq!(e, "the folder `empty` holds no files");
        let e = code_files(&bp, "gone", |_| false).unwrap_err();
        assert!(
            e.contains("cannot read `gone`: there is no such file"),
            "{e}"
        );
    }
}
