//! Installs the emulator recipe embedded from `emulator/` into a venv under the cache folder, keyed by the recipe's hash.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{io_err, lock, LocalError, LocalOptions};

/// `(path under emulator/, contents)` for each listed path.
macro_rules! recipe {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../emulator/", $path)))),*]
    };
}

/// Every file of `emulator/`, embedded so that an installed binary can set the emulator up by itself.
/// A unit test checks that this list matches the folder.
pub(crate) const RECIPE: &[(&str, &str)] = recipe![
    "requirements.txt",
    "installer.txt",
    "smoke_test.py",
    "README.md",
    "securecart_localstack/__init__.py",
    "securecart_localstack/providers.py",
    "securecart_localstack/server.py",
    "securecart_localstack/selfcheck.py",
    "securecart_localstack/strict.py",
    "securecart_localstack/lambda_executor.py",
    "securecart_localstack/lambda_worker.py",
    "securecart_localstack/lambda_worker.js",
    "securecart_localstack-0.1.0.dist-info/METADATA",
    "securecart_localstack-0.1.0.dist-info/entry_points.txt",
    "securecart_localstack-0.1.0.dist-info/INSTALLER",
    "securecart_localstack-0.1.0.dist-info/RECORD",
];

/// Recipe files that belong in the venv's site-packages (the plugin and its registration).
fn is_plugin_file(path: &str) -> bool {
    path.starts_with("securecart_localstack/") || path.starts_with("securecart_localstack-")
}

/// Bumped when the install procedure itself changes in a way that needs a fresh folder.
const INSTALL_LAYOUT: &str = "1";

/// First 16 hex digits of a SHA-256 over the layout version and every recipe file.
pub(crate) fn recipe_hash(recipe: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    h.update(INSTALL_LAYOUT.as_bytes());
    for (path, content) in recipe {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((content.len() as u64).to_le_bytes());
        h.update(content.as_bytes());
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The version of localstack-core pinned by the recipe.
pub(crate) fn pinned_localstack_version() -> &'static str {
    requirement_version(RECIPE[0].1, "localstack-core").unwrap_or("unknown")
}

fn requirement_version<'a>(requirements: &'a str, name: &str) -> Option<&'a str> {
    requirements
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once("=="))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

pub(crate) fn install_dir(opts: &LocalOptions) -> PathBuf {
    opts.cache_dir
        .join(format!("emulator-{}", recipe_hash(RECIPE)))
}

pub(crate) fn venv_python(install_dir: &Path) -> PathBuf {
    install_dir.join("venv").join("bin").join("python")
}

fn marker(install_dir: &Path) -> PathBuf {
    install_dir.join("installed.json")
}

fn install_log(install_dir: &Path) -> PathBuf {
    install_dir.join("install.log")
}

pub(crate) fn is_installed(install_dir: &Path) -> bool {
    marker(install_dir).is_file()
}

/// The venv's interpreter still runs (its base Python may have been removed or upgraded since).
fn venv_works(install_dir: &Path) -> bool {
    Command::new(venv_python(install_dir))
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the emulator unless this recipe is already installed; concurrent callers wait on a lock.
pub(crate) fn ensure_installed(
    opts: &LocalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, LocalError> {
    let dir = install_dir(opts);
    if is_installed(&dir) && venv_works(&dir) {
        return Ok(dir);
    }
    fs::create_dir_all(&opts.cache_dir).map_err(io_err("create", &opts.cache_dir))?;
    let _guard = lock::acquire(
        &opts.cache_dir.join("install.lock"),
        progress,
        "installing the emulator",
    )?;
    if is_installed(&dir) {
        if venv_works(&dir) {
            return Ok(dir);
        }
        progress("the emulator's Python environment no longer runs; reinstalling");
    }
    install(&dir, progress)?;
    prune_old_installs(opts, &dir, progress);
    Ok(dir)
}

/// Removes installs of earlier recipes (about 400 MB each) that no running emulator uses.
/// Deleting tens of thousands of files takes many seconds on a busy machine, so each folder is
/// renamed out of the way at once and deleted by a detached `rm -rf`; leftovers of an interrupted
/// deletion are picked up next time.
fn prune_old_installs(opts: &LocalOptions, current: &Path, progress: &mut dyn FnMut(&str)) {
    let in_use = super::live_install_dirs(opts);
    let Ok(entries) = fs::read_dir(&opts.cache_dir) else {
        return;
    };
    let mut doomed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(".trash-") {
            doomed.push(path);
            continue;
        }
        if !name.starts_with("emulator-") || path == current || in_use.contains(&path) {
            continue;
        }
        let trash = opts
            .cache_dir
            .join(format!(".trash-{name}-{}", std::process::id()));
        if fs::rename(&path, &trash).is_ok() {
            progress(&format!(
                "removing the emulator install of an earlier recipe: {}",
                path.display()
            ));
            doomed.push(trash);
        }
    }
    if doomed.is_empty() {
        return;
    }
    let mut rm = Command::new("rm");
    rm.arg("-rf")
        .args(&doomed)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut rm, 0);
    if rm.spawn().is_err() {
        for dir in doomed {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

struct Installer<'a> {
    dir: &'a Path,
    log_path: PathBuf,
    log: File,
    started: Instant,
}

impl Installer<'_> {
    fn note(&mut self, line: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.log, "== [{secs:6.1} s] {line}");
    }

    fn fail(&mut self, step: &str, detail: &str) -> LocalError {
        let _ = writeln!(self.log, "== FAILED: {step}: {detail}");
        let _ = self.log.flush();
        LocalError::Install {
            step: step.to_string(),
            log: self.log_path.clone(),
            tail: super::tail_lines(&self.log_path, 15),
        }
    }

    /// Runs a command with its output appended to the log; lines that `relay` picks are also
    /// passed to `progress` as they come.
    fn run(
        &mut self,
        step: &str,
        cmd: &mut Command,
        relay: &dyn Fn(&str) -> Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), LocalError> {
        self.note(&format!("{step}: {cmd:?}"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Err(self.fail(step, &format!("could not run {:?}: {e}", cmd.get_program())))
            }
        };
        // pip reports on stdout and uv on stderr; both streams go through one channel so that the
        // log keeps their order and `progress` (not Send) is only called on this thread.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let readers: Vec<_> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
        drop(tx);
        for line in rx {
            let _ = writeln!(self.log, "{line}");
            if let Some(msg) = relay(&line) {
                progress(&msg);
            }
        }
        for reader in readers {
            let _ = reader.join();
        }
        let status = child
            .wait()
            .map_err(io_err("wait for", Path::new(cmd.get_program())))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.fail(step, &format!("exited with {status}")))
        }
    }
}

fn relay_uv(line: &str) -> Option<String> {
    let t = line.trim();
    (t.starts_with("Resolved") || t.starts_with("Prepared") || t.starts_with("Installed"))
        .then(|| format!("  {t}"))
}

fn relay_pip(line: &str) -> Option<String> {
    let t = line.trim();
    (t.starts_with("Collecting")
        || t.starts_with("Installing collected")
        || t.starts_with("Successfully"))
    .then(|| format!("  {}", t.chars().take(100).collect::<String>()))
}

fn quiet(_: &str) -> Option<String> {
    None
}

fn install(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<(), LocalError> {
    let started = Instant::now();
    let python = super::python::find_python()?;
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err("remove the incomplete install", dir))?;
    }
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let log_path = install_log(dir);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err("create", &log_path))?;
    let mut inst = Installer {
        dir,
        log_path: log_path.clone(),
        log,
        started,
    };
    progress(&format!(
        "installing the local emulator (LocalStack {}) with Python {} into {} (about a minute the first time; log: {})",
        pinned_localstack_version(),
        python.version_string(),
        dir.display(),
        log_path.display()
    ));
    inst.note(&format!(
        "python: {} ({})",
        python.path.display(),
        python.version_string()
    ));

    let recipe_dir = dir.join("recipe");
    for (rel, content) in RECIPE {
        write_file(&recipe_dir.join(rel), content)?;
    }

    let venv = dir.join("venv");
    progress("  creating a Python virtual environment");
    let venv_result = inst.run(
        "create the virtual environment",
        Command::new(&python.path)
            .args(["-m", "venv"])
            .arg(&venv)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME"),
        &quiet,
        progress,
    );
    if let Err(e) = venv_result {
        let (a, b, _) = python.version;
        inst.note(&format!(
            "hint: on Debian/Ubuntu the venv module is in the python{a}.{b}-venv package"
        ));
        return Err(e);
    }
    let vpy = venv_python(dir);
    let pip_env = |c: &mut Command| {
        c.env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    };

    // uv installs the ~110 pinned packages about five times faster than pip; pip remains the
    // fallback for platforms where uv itself cannot be installed.
    progress("  installing the package installer (uv)");
    let mut cmd = Command::new(&vpy);
    cmd.args(["-m", "pip", "install", "--no-deps", "-r"])
        .arg(recipe_dir.join("installer.txt"));
    pip_env(&mut cmd);
    let have_uv = inst.run("install uv", &mut cmd, &quiet, progress).is_ok();

    let requirements = recipe_dir.join("requirements.txt");
    if have_uv {
        progress("  installing LocalStack and its pinned dependencies");
        let mut cmd = Command::new(dir.join("venv").join("bin").join("uv"));
        cmd.args(["pip", "install", "--no-deps", "--python"])
            .arg(&vpy)
            .arg("-r")
            .arg(&requirements);
        pip_env(&mut cmd);
        // uv does not read pip's settings; carry over the index so that mirrors keep working.
        if std::env::var_os("UV_INDEX_URL").is_none()
            && std::env::var_os("UV_DEFAULT_INDEX").is_none()
        {
            if let Some(index) = std::env::var_os("PIP_INDEX_URL") {
                cmd.env("UV_INDEX_URL", index);
            }
        }
        if std::env::var_os("UV_EXTRA_INDEX_URL").is_none() {
            if let Some(extra) = std::env::var_os("PIP_EXTRA_INDEX_URL") {
                cmd.env("UV_EXTRA_INDEX_URL", extra);
            }
        }
        // uv hard-links from its cache (copying when the cache is on another file system).
        cmd.env("UV_PYTHON_DOWNLOADS", "never")
            .env_remove("VIRTUAL_ENV");
        inst.run(
            "install the pinned requirements with uv",
            &mut cmd,
            &relay_uv,
            progress,
        )?;
    } else {
        progress("  uv could not be installed; installing with pip instead (a few minutes)");
        let mut cmd = Command::new(&vpy);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--progress-bar",
            "off",
            "-r",
        ])
        .arg(&requirements);
        pip_env(&mut cmd);
        inst.run(
            "install the pinned requirements with pip",
            &mut cmd,
            &relay_pip,
            progress,
        )?;
    }

    progress("  installing the securecart LocalStack plugin");
    let out = Command::new(&vpy)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("run", &vpy))?;
    let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !site.is_dir() {
        return Err(inst.fail("find site-packages", &String::from_utf8_lossy(&out.stderr)));
    }
    for (rel, content) in RECIPE.iter().filter(|(rel, _)| is_plugin_file(rel)) {
        write_file(&site.join(rel), content)?;
    }

    progress("  checking that LocalStack discovers the plugin");
    let mut cmd = Command::new(&vpy);
    // Bytecode cached while the check imports LocalStack makes the first start faster.
    cmd.args(["-m", "securecart_localstack.selfcheck"])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONDONTWRITEBYTECODE");
    inst.run("check plugin discovery", &mut cmd, &quiet, progress)?;

    let secs = started.elapsed().as_secs_f64();
    let info = serde_json::json!({
        "recipe": recipe_hash(RECIPE),
        "localstack": pinned_localstack_version(),
        "python": python.path,
        "python_version": python.version_string(),
        "installer": if have_uv { "uv" } else { "pip" },
        "seconds": (secs * 10.0).round() / 10.0,
    });
    inst.note(&format!("installed in {secs:.1} s"));
    // Written last and atomically: its presence is what marks the folder as usable.
    let tmp = inst.dir.join("installed.json.tmp");
    write_file(
        &tmp,
        &serde_json::to_string_pretty(&info).unwrap_or_default(),
    )?;
    fs::rename(&tmp, marker(dir)).map_err(io_err("write", &marker(dir)))?;
    progress(&format!("emulator installed in {secs:.0} s"));
    Ok(())
}

fn write_file(path: &Path, content: &str) -> Result<(), LocalError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    fs::write(path, content).map_err(io_err("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files under `emulator/` that the binary must carry; caches and editor files are not part of
    /// the recipe.
    fn recipe_files_on_disk() -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name == "__pycache__"
                    || name.ends_with(".pyc")
                    || name.starts_with('.')
                    || name.ends_with('~')
                {
                    continue;
                }
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(
                        path.strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("emulator");
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn embedded_recipe_matches_the_emulator_folder() {
        let mut embedded: Vec<String> = RECIPE.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded,
            recipe_files_on_disk(),
            "update RECIPE in src/local/install.rs"
        );
    }

    #[test]
    fn recipe_hash_is_stable_and_content_sensitive() {
        let a = recipe_hash(&[("a.txt", "one")]);
        assert_eq!(a.len(), 16);
        assert_eq!(a, recipe_hash(&[("a.txt", "one")]));
        assert_ne!(a, recipe_hash(&[("a.txt", "two")]));
        assert_ne!(a, recipe_hash(&[("b.txt", "one")]));
        // Moving bytes between path and content must change the hash.
        assert_ne!(recipe_hash(&[("ab", "c")]), recipe_hash(&[("a", "bc")]));
    }

    #[test]
    fn requirements_are_fully_pinned_and_name_localstack() {
        assert_eq!(pinned_localstack_version(), "4.14.0");
        for line in RECIPE[0]
            .1
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(line.contains("=="), "unpinned requirement {line:?}");
        }
        assert_eq!(
            requirement_version(RECIPE[1].1, "uv").map(|v| !v.is_empty()),
            Some(true)
        );
    }

    #[test]
    fn plugin_files_are_recognised() {
        assert!(is_plugin_file("securecart_localstack/providers.py"));
        assert!(is_plugin_file(
            "securecart_localstack-0.1.0.dist-info/entry_points.txt"
        ));
        assert!(!is_plugin_file("requirements.txt"));
        assert!(!is_plugin_file("smoke_test.py"));
    }

    #[test]
    fn entry_points_register_the_three_providers() {
        let eps = RECIPE
            .iter()
            .find(|(p, _)| p.ends_with("entry_points.txt"))
            .unwrap()
            .1;
        for name in ["rds:default", "elbv2:default", "autoscaling:default"] {
            assert!(
                eps.contains(&format!("{name} = securecart_localstack.providers:")),
                "{name}"
            );
        }
        assert!(eps.contains(&format!(
            "[localstack.runtime.server]\n{} = ",
            super::super::GATEWAY_SERVER
        )));
        let executor = super::super::LAMBDA_EXECUTOR;
        assert!(
            eps.contains(&format!(
                "[localstack.lambda.runtime_executor]\n{executor} = "
            )),
            "{executor}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pruning_keeps_the_current_install_and_those_in_use() {
        let cache = std::env::temp_dir().join(format!("sc-prune-test-{}", std::process::id()));
        for d in ["emulator-old", "emulator-busy", "emulator-new", "other"] {
            fs::create_dir_all(cache.join(d)).unwrap();
        }
        // A process whose command line looks like the emulator's stands in for a running one.
        let mut busy = Command::new("sh")
            .args(["-c", "sleep 30", "localstack.runtime.main"])
            .spawn()
            .unwrap();
        // Until it has exec'd, /proc shows the test binary's command line.
        let cmdline = format!("/proc/{}/cmdline", busy.id());
        for _ in 0..200 {
            if fs::read(&cmdline).is_ok_and(|c| String::from_utf8_lossy(&c).contains("localstack"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let record = format!("{}\n{}\n", busy.id(), cache.join("emulator-busy").display());
        write_file(&cache.join("run/4566/emulator.pid"), &record).unwrap();
        write_file(&cache.join("run/4567/emulator.pid"), "999999999\n/x\n").unwrap();
        let opts = LocalOptions {
            port: 4566,
            cache_dir: cache.clone(),
            strict: None,
        };
        let mut said = Vec::new();
        prune_old_installs(&opts, &cache.join("emulator-new"), &mut |m| {
            said.push(m.to_string())
        });
        let _ = busy.kill();
        let _ = busy.wait();
        let list = || {
            let mut left: Vec<String> = fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            left.sort();
            left
        };
        // The deletion runs in the background.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while list().len() > 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let left = list();
        fs::remove_dir_all(&cache).unwrap();
        assert_eq!(left, ["emulator-busy", "emulator-new", "other", "run"]);
        assert_eq!(said.len(), 1, "{said:?}");
    }

    #[test]
    fn relays_only_summary_lines() {
        assert_eq!(
            relay_uv("Resolved 113 packages in 2ms").as_deref(),
            Some("  Resolved 113 packages in 2ms")
        );
        assert_eq!(relay_uv(" + boto3==1.42.54"), None);
        assert!(relay_pip("Collecting boto3==1.42.54").is_some());
        assert_eq!(
            relay_pip("  Downloading boto3-1.42.54-py3-none-any.whl (140 kB)"),
            None
        );
    }
}
