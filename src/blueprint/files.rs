//! The one loader for files a blueprint names (`code`, `user_data_file`,
//! `definition_file`): the path is relative, stays inside the blueprint's folder after
//! `..` and symlinks are resolved, names regular files only, and is read with a size cap,
//! so a blueprint from a pull request cannot read the host's files or exhaust memory.
//!
//! Errors are plain sentences without the field name: callers locate them at the field.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

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
    pub path: PathBuf,
    pub executable: bool,
    pub size: u64,
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{} KB", bytes / 1024)
    }
}

/// The blueprint's folder, with symlinks resolved: what every file must stay inside.
fn base(dir: &Path) -> Result<PathBuf, String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.canonicalize()
        .map_err(|e| format!("cannot resolve the blueprint's folder: {e}"))
}

/// `rel` resolved inside the blueprint's folder `dir`, or why it may not be read.
pub fn resolve(dir: &Path, rel: &str) -> Result<PathBuf, String> {
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
    let outside =
        || format!("`{rel}` leads outside the blueprint's folder: files must stay inside it");
    // Checked on the text first, so a path out of the folder is refused the same way
    // whether or not what it names exists.
    let mut depth: usize = 0;
    for c in p.components() {
        match c {
            Component::ParentDir => depth = depth.checked_sub(1).ok_or_else(outside)?,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    let base = base(dir)?;
    let full = base.join(p).canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("cannot read `{rel}`: there is no such file in the blueprint's folder")
        }
        _ => format!("cannot read `{rel}`: {e}"),
    })?;
    // Symlinks are resolved by now: one pointing out of the folder lands here.
    if !full.starts_with(&base) {
        return Err(outside());
    }
    Ok(full)
}

/// Reads a regular file already resolved inside the folder, at most `cap` bytes. `shown`
/// is the name the user wrote; `limit` says whose limit `cap` is.
fn read_regular(path: &Path, shown: &str, cap: usize, limit: &str) -> Result<Vec<u8>, String> {
    let not_regular =
        || format!("`{shown}` is not a regular file (a device, pipe or socket could never end)");
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if meta.is_dir() {
        return Err(format!("`{shown}` is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    // The file could have been swapped since the check above: check what was opened.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(not_regular());
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

/// The bytes of the file `rel` inside the blueprint's folder `dir`, at most `cap`.
pub fn read(dir: &Path, rel: &str, cap: usize, limit: &str) -> Result<Vec<u8>, String> {
    read_regular(&resolve(dir, rel)?, rel, cap, limit)
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
    read_regular(
        &f.path,
        &f.name,
        CODE_UNZIPPED_MAX as usize,
        "the most Lambda takes unzipped",
    )
}

/// The files of Lambda code `rel` (a file, or a folder walked without recursion), sorted
/// by name, leaving out names `skipped` says are never part of what runs. Every entry is
/// checked like a single file: inside the folder after symlinks, a regular file; the
/// total stays within what Lambda takes unzipped, and a folder must hold some file.
pub fn code_files(
    dir: &Path,
    rel: &str,
    skipped: impl Fn(&str) -> bool,
) -> Result<Vec<CodeFile>, String> {
    let root = resolve(dir, rel)?;
    let base = base(dir)?;
    let meta = std::fs::metadata(&root).map_err(|e| format!("cannot read `{rel}`: {e}"))?;
    let mut out = Vec::new();
    if !meta.is_dir() {
        if !meta.is_file() {
            return Err(format!("`{rel}` is not a regular file or a folder"));
        }
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push(CodeFile {
            name,
            path: root,
            executable: executable(&meta),
            size: meta.len(),
        });
        return Ok(out);
    }
    let mut total: u64 = 0;
    let mut seen = HashSet::from([root.clone()]);
    let mut stack = vec![(root, String::new())];
    while let Some((folder, prefix)) = stack.pop() {
        let shown = |name: &str| format!("{rel}/{prefix}{name}");
        let entries =
            std::fs::read_dir(&folder).map_err(|e| format!("cannot read `{}`: {e}", shown("")))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read `{}`: {e}", shown("")))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if skipped(&name) {
                continue;
            }
            let path = entry
                .path()
                .canonicalize()
                .map_err(|e| format!("cannot read `{}`: {e}", shown(&name)))?;
            if !path.starts_with(&base) {
                return Err(format!(
                    "`{}` leads outside the blueprint's folder: files must stay inside it",
                    shown(&name)
                ));
            }
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read `{}`: {e}", shown(&name)))?;
            let zip_name = format!("{prefix}{name}");
            if meta.is_dir() {
                // A symlink back up the tree would otherwise be walked forever.
                if !seen.insert(path.clone()) {
                    return Err(format!(
                        "`{}` is a folder already included (a symlink loop?)",
                        shown(&name)
                    ));
                }
                stack.push((path, format!("{zip_name}/")));
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
                    path,
                    executable: executable(&meta),
                    size: meta.len(),
                });
            } else {
                return Err(format!(
                    "`{}` is not a regular file (a device, pipe or socket could never end)",
                    shown(&name)
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("the folder `{rel}` holds no files"));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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
