//! Finds a Python interpreter that can run localstack-core 4.14 (Python 3.13).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::LocalError;

/// Minor versions of Python 3 that LocalStack 4.14 runs on with the pinned requirements. 3.11 lacks
/// PEP 695 syntax; on 3.12 SQS, Events, Lambda and S3 fail to import `warnings.deprecated` and Step
/// Functions fails on `threading.Lock | None` (both new in 3.13); on 3.14 the pinned
/// moto/aws-sam-translator set does not resolve.
pub(crate) const SUPPORTED_MINORS: [u32; 1] = [13];

/// A Python interpreter that answered `--version` with a supported version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Python {
    pub(crate) path: PathBuf,
    pub(crate) version: (u32, u32, u32),
}

impl Python {
    pub(crate) fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// Parses the output of `python --version`, e.g. "Python 3.13.0" or "Python 3.12.1+".
pub(crate) fn parse_version_output(output: &str) -> Option<(u32, u32, u32)> {
    let rest = output.trim().strip_prefix("Python ")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    // The patch part may carry a suffix ("0rc1", "1+"); only its leading digits matter.
    let patch_text = parts.next().unwrap_or("0");
    let digits: String = patch_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let patch = digits.parse().unwrap_or(0);
    Some((major, minor, patch))
}

pub(crate) fn is_supported(version: (u32, u32, u32)) -> bool {
    version.0 == 3 && SUPPORTED_MINORS.contains(&version.1)
}

/// Parses a pyenv version folder name such as "3.13.0"; free-threaded ("3.13.0t") and
/// pre-release builds are skipped because the pinned wheels do not cover them.
pub(crate) fn parse_pyenv_dir_name(name: &str) -> Option<(u32, u32, u32)> {
    let mut parts = name.split('.');
    let mut next = || -> Option<u32> {
        let p = parts.next()?;
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let v = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(v)
}

/// Runs `<candidate> --version`. pyenv shims exist on PATH for versions that are installed but not
/// selected and fail when run, so only an actual answer counts.
fn probe(candidate: &Path) -> Result<(u32, u32, u32), String> {
    let out = Command::new(candidate)
        .arg("--version")
        .stdin(Stdio::null())
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim().to_string();
        return Err(format!("exited with {}: {first}", out.status));
    }
    // Python 2 printed its version on stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_version_output(&text)
        .ok_or_else(|| format!("unexpected --version output {:?}", text.trim()))
}

fn pyenv_root() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pyenv")
        .arg("root")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success() {
            let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !root.is_empty() {
                return Some(PathBuf::from(root));
            }
        }
    }
    if let Some(root) = std::env::var_os("PYENV_ROOT").filter(|r| !r.is_empty()) {
        return Some(PathBuf::from(root));
    }
    dirs::home_dir().map(|h| h.join(".pyenv"))
}

/// Interpreters under `<pyenv root>/versions`, newest first, for each supported minor in order.
fn pyenv_candidates(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("versions")) else {
        return Vec::new();
    };
    let mut found: Vec<((u32, u32, u32), PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = parse_pyenv_dir_name(&e.file_name().to_string_lossy())?;
            is_supported(v).then(|| {
                (
                    v,
                    e.path().join("bin").join(format!("python{}.{}", v.0, v.1)),
                )
            })
        })
        .collect();
    found.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Looks in order at $SECURECART_PYTHON, python3.13/python3 on PATH, then pyenv's
/// installed versions (even when pyenv has another version selected).
pub(crate) fn find_python() -> Result<Python, LocalError> {
    if let Some(path) = std::env::var_os("SECURECART_PYTHON").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return match probe(&path) {
            Ok(v) if is_supported(v) => Ok(Python { path, version: v }),
            Ok((a, b, c)) => Err(LocalError::BadPythonOverride {
                path,
                reason: format!("it is Python {a}.{b}.{c}"),
            }),
            Err(reason) => Err(LocalError::BadPythonOverride { path, reason }),
        };
    }

    let mut tried = Vec::new();
    let mut pyenv_note = None;
    let mut candidates: Vec<PathBuf> = SUPPORTED_MINORS
        .iter()
        .map(|m| PathBuf::from(format!("python3.{m}")))
        .collect();
    candidates.push(PathBuf::from("python3"));
    if let Some(root) = pyenv_root() {
        let under = pyenv_candidates(&root);
        if under.is_empty() {
            pyenv_note = Some(format!("{}/versions/3.13.*", root.display()));
        }
        candidates.extend(under);
    }
    for candidate in candidates {
        match probe(&candidate) {
            Ok(v) if is_supported(v) => {
                // A bare name is resolved now so that the venv records a stable interpreter.
                let path = resolve_on_path(&candidate).unwrap_or(candidate);
                return Ok(Python { path, version: v });
            }
            Ok((a, b, c)) => tried.push(format!("{} (Python {a}.{b}.{c})", candidate.display())),
            Err(e) => tried.push(format!("{} ({e})", candidate.display())),
        }
    }
    tried.extend(pyenv_note);
    Err(LocalError::PythonNotFound {
        tried: tried.join("; "),
    })
}

fn resolve_on_path(name: &Path) -> Option<PathBuf> {
    if name.components().count() != 1 {
        return Some(name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_outputs() {
        assert_eq!(parse_version_output("Python 3.13.0\n"), Some((3, 13, 0)));
        assert_eq!(parse_version_output("Python 3.12.1+"), Some((3, 12, 1)));
        assert_eq!(parse_version_output("Python 3.14.0rc1"), Some((3, 14, 0)));
        assert_eq!(parse_version_output("Python 3.12"), Some((3, 12, 0)));
        assert_eq!(
            parse_version_output("pyenv: python3.13: command not found"),
            None
        );
        assert_eq!(parse_version_output(""), None);
    }

    #[test]
    fn only_313_is_supported() {
        assert!(!is_supported((3, 12, 1)));
        assert!(is_supported((3, 13, 0)));
        assert!(!is_supported((3, 11, 7)));
        assert!(!is_supported((3, 14, 0)));
        assert!(!is_supported((2, 7, 18)));
    }

    #[test]
    fn parses_pyenv_folder_names() {
        assert_eq!(parse_pyenv_dir_name("3.13.0"), Some((3, 13, 0)));
        assert_eq!(parse_pyenv_dir_name("3.12.10"), Some((3, 12, 10)));
        assert_eq!(parse_pyenv_dir_name("3.13.0t"), None);
        assert_eq!(parse_pyenv_dir_name("3.13-dev"), None);
        assert_eq!(parse_pyenv_dir_name("pypy3.10-7.3.12"), None);
        assert_eq!(parse_pyenv_dir_name("3.12"), None);
    }

    #[test]
    fn pyenv_candidates_prefer_newest_supported() {
        let root = std::env::temp_dir().join(format!("sc-pyenv-test-{}", std::process::id()));
        for v in ["3.11.7", "3.12.9", "3.13.0", "3.13.2", "3.13.0t", "3.14.0"] {
            std::fs::create_dir_all(root.join("versions").join(v).join("bin")).unwrap();
        }
        let got: Vec<String> = pyenv_candidates(&root)
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            got,
            [
                "versions/3.13.2/bin/python3.13",
                "versions/3.13.0/bin/python3.13"
            ]
        );
    }
}
