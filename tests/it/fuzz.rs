//! A structure-aware fuzzer for the blueprint loader and validator (issue 8): blueprints
//! grown from the shipped ones and the bad-blueprint corpus by mutations at the YAML level,
//! loaded in-process with `--var`s and the diagnostics rendered, asserting no panic, a
//! location inside the text for every problem, bounded memory and bounded time per case.
//!
//! A few seconds by default; `SECURECART_FUZZ_SECONDS=600` for a long run,
//! `SECURECART_FUZZ_SEED=<hex>` to replay a run's sequence, `=random` to explore (CI runs a
//! fixed sequence). The cases run in a child
//! process (this binary again, running [`worker`]) so that an abort — a stack overflow,
//! an allocation failure — is reported with the input that caused it rather than taking
//! the whole test binary down, and so that its peak RSS is the fuzzer's alone.

use std::collections::BTreeSet;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use securecart::blueprint::{self, Catalog as _, Diagnostics, LoadError, Problem};
use securecart::resources::Catalog;
use serde_yaml::Value;

use super::common::repo;

/// Seconds of fuzzing in an ordinary `cargo test`.
const DEFAULT_SECONDS: f64 = 3.0;

/// Most CPU time one case may take. Cases are at most a few hundred KB (the longest generated
/// string is 100,000 characters, an alias bomb expands at most 100× its events, which
/// serde_yaml enforces) and load in milliseconds (the slowest of a 10-minute run, a
/// 780 KB case, took 0.96 s of CPU in a debug build): 5 s catches a hang or a blow-up.
const CASE_MAX: Duration = Duration::from_secs(5);

/// Most a single case may add to the fuzzing process's resident memory. The largest input
/// is well under 1 MB; the loader holds a few copies of it as YAML, JSON and the index,
/// alias expansion is capped by serde_yaml at 100× the events. 256 MB is ten times the
/// worst measured (23 MB in a 10-minute run of 33,000 cases) and far below what a machine
/// has, so reading `/dev/zero` or an unbounded expansion (gigabytes) fails here.
const CASE_RSS_MAX_KB: u64 = 256 * 1024;

const WORKER: &str = "fuzz::worker";

#[test]
fn hostile_blueprints_never_crash_and_are_always_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seconds = fuzz_seconds();
    let stdout = dir.path().join("worker.out");
    let stderr = dir.path().join("worker.err");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            WORKER,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SECURECART_FUZZ_DIR", dir.path())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start the fuzz worker");
    // Shrinking a failure takes a while; a worker that outlives this has hung.
    let deadline = Instant::now() + Duration::from_secs_f64(seconds * 2.0 + 300.0);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    // The harness's own `test fuzz::worker ... ` may start the first line.
    let summary: Vec<&str> = out
        .lines()
        .filter_map(|l| l.find("fuzz: ").map(|i| &l[i..]))
        .collect();
    for l in &summary {
        eprintln!("{l}");
    }
    if !status.success() || summary.is_empty() {
        // An abort leaves the case it was running behind.
        let ws = dir.path().join("ws");
        let last = std::fs::read(ws.join("blueprint.yaml")).unwrap_or_default();
        let kept = dir.keep();
        let vars = std::fs::read_to_string(ws.join("vars.txt")).unwrap_or_default();
        // The worker's own report, without the backtrace of its final panic.
        let tail = err.split("stack backtrace:").next().unwrap_or_default();
        panic!(
            "the fuzz worker failed ({status}):\n{out}\n--- worker stderr\n{tail}\n--- the case it was running (vars: {vars:?}; kept in {}):\n{}",
            kept.display(),
            // A failure it caught is reported above, shrunk; this is for an abort.
            if err.contains("\nFAILED: ") { "(see above)".into() } else { abridged(&last) }
        );
    }
}

/// The sequence CI runs (`SECURECART_FUZZ_SEED` unset).
const DEFAULT_SEED: u64 = 0x5ec0_ca27;

fn fuzz_seconds() -> f64 {
    std::env::var("SECURECART_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(DEFAULT_SECONDS)
}

#[test]
#[ignore = "the fuzz cases, run in a child process by hostile_blueprints_never_crash_and_are_always_located"]
fn worker() {
    let root = std::env::var_os("SECURECART_FUZZ_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("securecart-fuzz-{}", std::process::id()))
        });
    let ws = workspace(&root.join("ws"));
    let seeds = seeds();
    let vocab = Arc::new(Vocab::new());
    let strategy = case_strategy(seeds.len(), vocab.clone());
    // A fixed sequence by default, so that the bounded run in CI fails only on a change
    // of the code, never on the luck of the draw; `random` explores (long runs do).
    let seed = match std::env::var("SECURECART_FUZZ_SEED").ok().as_deref() {
        Some("random") => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
        Some(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("SECURECART_FUZZ_SEED is `random` or hex, not `{s}`")),
        None => DEFAULT_SEED,
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    install_quiet_panic_hook();
    let budget = Duration::from_secs_f64(fuzz_seconds());
    let start = Instant::now();
    let mut stats = Stats::default();
    let baseline_kb = rss_kb().1;
    while start.elapsed() < budget || stats.cases == 0 {
        let mut tree = strategy.new_tree(&mut runner).expect("a case");
        let case = tree.current();
        let outcome = run(&ws, &seeds, &vocab, &case, &mut stats);
        if let Err(why) = outcome {
            let (case, why) = shrink(&ws, &seeds, &vocab, &mut tree, case, why);
            let (text, vars) = render(&seeds, &vocab, &case);
            let kept = root.join("failed.yaml");
            std::fs::write(&kept, &text).expect("keep the failing case");
            // Back to the default hook, or this panic would be silenced too.
            drop(std::panic::take_hook());
            panic!(
                "fuzz case {} (seed {seed:x}) failed, shrunk to:\nvars: {vars:?}\nblueprint ({} bytes, from {}, kept in {}):\n{}\nmutations: {:#?}\ntext mutations: {:#?}\nFAILED: {why}",
                stats.cases,
                text.len(),
                seeds[case.seed % seeds.len()].0,
                kept.display(),
                abridged(&text),
                case.muts,
                case.text_muts,
            );
        }
    }
    println!(
        "fuzz: {} cases in {:.0} s (seed {seed:x}): {} loaded, {} refused with {} problems; \
         slowest case {} ms of CPU ({} bytes); peak RSS {} MB (baseline {} MB, most added by one case {} MB); largest case {} bytes",
        stats.cases,
        start.elapsed().as_secs_f64(),
        stats.loaded,
        stats.refused,
        stats.problems,
        stats.slowest.as_millis(),
        stats.slowest_len,
        stats.peak_kb.max(baseline_kb) / 1024,
        baseline_kb / 1024,
        stats.case_rss_kb / 1024,
        stats.largest,
    );
    println!(
        "fuzz: problems without a location (documented kinds): {}",
        stats.unlocated
    );
}

/// The case as text, its middle cut when it is long.
fn abridged(text: &[u8]) -> String {
    let t = String::from_utf8_lossy(text);
    let chars: Vec<char> = t.chars().collect();
    if chars.len() <= 6000 {
        return t.into_owned();
    }
    let head: String = chars[..3000].iter().collect();
    let tail: String = chars[chars.len() - 3000..].iter().collect();
    format!(
        "{head}\n[… {} characters cut …]\n{tail}",
        chars.len() - 6000
    )
}

#[derive(Default)]
struct Stats {
    cases: u64,
    loaded: u64,
    refused: u64,
    problems: u64,
    unlocated: u64,
    slowest: Duration,
    slowest_len: usize,
    case_rss_kb: u64,
    peak_kb: u64,
    largest: usize,
}

/// Shrinks a failing case with proptest's value tree: simpler while it still fails.
fn shrink(
    ws: &Path,
    seeds: &[(String, Vec<u8>)],
    vocab: &Vocab,
    tree: &mut impl ValueTree<Value = Case>,
    mut case: Case,
    mut why: String,
) -> (Case, String) {
    let mut stats = Stats::default();
    let give_up = Instant::now() + Duration::from_secs(90);
    while Instant::now() < give_up && tree.simplify() {
        loop {
            let candidate = tree.current();
            match run(ws, seeds, vocab, &candidate, &mut stats) {
                Err(w) => {
                    case = candidate;
                    why = w;
                    break;
                }
                Ok(()) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    (case, why)
}

// ---------------------------------------------------------------------------------------
// One case: write it, load it, check what came back.

/// Runs one case and checks every property; `Err` says which failed.
fn run(
    ws: &Path,
    seeds: &[(String, Vec<u8>)],
    vocab: &Vocab,
    case: &Case,
    stats: &mut Stats,
) -> Result<(), String> {
    let (text, vars) = render(seeds, vocab, case);
    let path = ws.join("blueprint.yaml");
    std::fs::write(&path, &text).expect("write the case");
    std::fs::write(ws.join("vars.txt"), format!("{vars:?}")).expect("write the vars");
    stats.cases += 1;
    stats.largest = stats.largest.max(text.len());
    reset_peak_rss();
    let before = rss_kb().0;
    let t = cpu_time();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let loaded = blueprint::load(&path, &vars, &Catalog);
        check(loaded)
    }));
    let took = cpu_time().saturating_sub(t);
    let added = rss_kb().1.saturating_sub(before);
    if took > stats.slowest {
        stats.slowest = took;
        stats.slowest_len = text.len();
    }
    stats.case_rss_kb = stats.case_rss_kb.max(added);
    // The peak is reset for every case: the run's own is the highest of theirs.
    stats.peak_kb = stats.peak_kb.max(rss_kb().1);
    let outcome = match result {
        Ok(r) => r?,
        Err(payload) => return Err(format!("panicked: {}", panic_message(payload))),
    };
    match outcome {
        Outcome::Loaded => stats.loaded += 1,
        Outcome::Refused {
            problems,
            unlocated,
        } => {
            stats.refused += 1;
            stats.problems += problems;
            stats.unlocated += unlocated;
        }
    }
    if took > CASE_MAX {
        return Err(format!("took {} ms, over {CASE_MAX:?}", took.as_millis()));
    }
    if added > CASE_RSS_MAX_KB {
        return Err(format!(
            "added {} MB to the resident memory, over {} MB",
            added / 1024,
            CASE_RSS_MAX_KB / 1024
        ));
    }
    Ok(())
}

enum Outcome {
    Loaded,
    Refused { problems: u64, unlocated: u64 },
}

fn check(loaded: Result<blueprint::Blueprint, LoadError>) -> Result<Outcome, String> {
    match loaded {
        Ok(bp) => {
            let d = Diagnostics {
                file: bp.source.clone(),
                problems: bp.warnings.clone(),
                secrets: bp.secrets.clone(),
            };
            check_diagnostics(&d)?;
            Ok(Outcome::Loaded)
        }
        Err(LoadError::Invalid(d)) => {
            if !d.has_errors() {
                return Err("refused without an error".into());
            }
            let unlocated = check_diagnostics(&d)?;
            Ok(Outcome::Refused {
                problems: d.problems.len() as u64,
                unlocated,
            })
        }
        // The case file is always there and readable: nothing should fail to read it.
        Err(e @ LoadError::Io { .. }) => Err(format!("an I/O error on the case file: {e}")),
    }
}

/// Every problem points inside the text (or is of a documented unlocated kind), and both
/// renderings and the JSON form complete. Returns how many were unlocated.
fn check_diagnostics(d: &Diagnostics) -> Result<u64, String> {
    let mut unlocated = 0;
    for p in &d.problems {
        // A problem inside a file the blueprint names (a definition file) is located in
        // that file's text.
        let text = &p.source.as_ref().unwrap_or(&d.file).text;
        let lines: Vec<&str> = text.split('\n').collect();
        match (p.line, p.column) {
            (Some(line), Some(column)) => {
                let at = format!("{line}:{column} `{}`", p.message);
                let Some(l) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
                    return Err(format!("{at}: line outside the {} lines", lines.len()));
                };
                let width = l.trim_end_matches('\r').chars().count();
                if column == 0 || column > width + 1 {
                    return Err(format!(
                        "{at}: column outside the line ({width} characters)"
                    ));
                }
                let (offset, len) = p.span.ok_or(format!("{at}: a position without a span"))?;
                let end = offset
                    .checked_add(len)
                    .ok_or(format!("{at}: span overflows"))?;
                if end > text.len() || !text.is_char_boundary(offset) || !text.is_char_boundary(end)
                {
                    return Err(format!(
                        "{at}: span {offset}+{len} is not inside the {}-byte text on character boundaries",
                        text.len()
                    ));
                }
            }
            (None, None) if documented_unlocated(p) => unlocated += 1,
            _ => return Err(format!("no location for `{}` ({:?})", p.message, p.path)),
        }
    }
    let plain = securecart::render::diagnostics(d, false);
    let fancy = securecart::render::diagnostics(d, true);
    serde_json::to_string(&d.problems).map_err(|e| format!("problems as JSON: {e}"))?;
    for p in &d.problems {
        // `Display` escapes nothing: a message holding a line break would break the
        // one-problem-per-line form that editors and CI logs read,
        // and an escape sequence or a bidi override would drive the terminal.
        let shown = [Some(&p.message), p.help.as_ref()];
        if shown
            .iter()
            .flatten()
            .any(|s| s.chars().any(blueprint::unprintable))
        {
            return Err(format!("a message holds a control character: {:?}", p));
        }
    }
    // One line per problem, in order, and the annotated form ends with those lines too.
    let lines: Vec<&str> = plain.trim_end_matches('\n').split('\n').collect();
    let in_order = lines.len() == d.problems.len()
        && lines
            .iter()
            .zip(&d.problems)
            .all(|(l, p)| l.contains(&p.message));
    if !d.problems.is_empty() && (!in_order || !fancy.contains(plain.trim_end())) {
        return Err(format!(
            "the rendering does not list the {} problems one per line",
            d.problems.len()
        ));
    }
    Ok(unlocated)
}

/// Problems that come from the command line, not the file, and so have no position.
fn documented_unlocated(p: &Problem) -> bool {
    p.message.starts_with("--var ") && p.message.contains(": the blueprint has no parameter `")
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into());
    let at = LAST_PANIC.lock().map(|l| l.clone()).unwrap_or_default();
    format!("{msg} at {at}")
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Panics are caught and reported with their input; the default hook would print each
/// one again (and many while shrinking).
fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut l) = LAST_PANIC.lock() {
            *l = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
        }
    }));
}

/// CPU time this thread has run: unlike wall time, it does not grow when other test
/// binaries share the machine's cores.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        })
}

/// (current, peak) resident set size of this process in KB, from /proc.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS to the current one (Linux ≥ 4.0, `clear_refs` value 5), so each
/// case's own peak is measured.
fn reset_peak_rss() {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
    {
        let _ = f.write_all(b"5");
    }
}

// ---------------------------------------------------------------------------------------
// The folder a case's blueprint sits in: real code folders and files, and the hostile
// neighbours file fields can name (symlinks out, a loop, a device, a FIFO).

fn workspace(ws: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(ws);
    std::fs::create_dir_all(ws).expect("workspace");
    let r = repo();
    copy_dir(&r.join("labs/01/functions"), &ws.join("functions"));
    copy_dir(&r.join("labs/01/orders"), &ws.join("orders"));
    std::fs::copy(r.join("labs/02/web.sh"), ws.join("web.sh")).expect("web.sh");
    let files = ws.join("files");
    std::fs::create_dir_all(files.join("editor_only")).expect("files/");
    for f in ["big.sh", "flow.asl.json"] {
        std::fs::copy(r.join("tests/fixtures/bad/files").join(f), files.join(f)).expect("file");
    }
    std::fs::write(files.join("editor_only/.DS_Store"), b"x").expect("editor file");
    std::fs::write(
        ws.join("flow.yaml"),
        "StartAt: A\nStates:\n  A: {Type: Pass, End: true}\n",
    )
    .expect("flow.yaml");
    std::fs::create_dir_all(ws.join("empty")).expect("empty/");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("/etc/hostname", files.join("escape.sh")).expect("symlink");
        symlink("/etc", ws.join("link_out")).expect("symlink");
        symlink("loop", ws.join("loop")).expect("symlink");
        symlink("/dev/zero", ws.join("zero")).expect("symlink");
        symlink("functions", ws.join("link_in")).expect("symlink");
        let made = std::process::Command::new("mkfifo")
            .arg(ws.join("pipe"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo");
    }
    ws.to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// The shipped blueprints and the bad-blueprint corpus, as bytes (one is not UTF-8).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let r = repo();
    let mut paths: Vec<PathBuf> = Vec::new();
    for (dir, nested) in [
        ("labs", true),
        ("blueprints", false),
        ("tests/fixtures/bad", false),
    ] {
        for e in std::fs::read_dir(r.join(dir)).expect("seed folder") {
            let p = e.expect("entry").path();
            if nested {
                if p.join("blueprint.yaml").is_file() {
                    paths.push(p.join("blueprint.yaml"));
                }
            } else if p.extension().is_some_and(|x| x == "yaml") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    assert!(paths.len() >= 20, "seeds missing: {paths:?}");
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&r).unwrap_or(&p).display().to_string();
            (name, std::fs::read(&p).expect("seed"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// What the mutations draw on: every field name the kinds know, their attributes.

struct Vocab {
    kinds: Vec<&'static str>,
    /// Each kind's own top-level fields.
    kind_fields: Vec<Vec<String>>,
    /// Every field name anywhere in any schema, and the blueprint's own keys.
    fields: Vec<String>,
}

impl Vocab {
    fn new() -> Self {
        let kinds = Catalog.kinds();
        let mut all = BTreeSet::new();
        let mut kind_fields = Vec::new();
        for k in &kinds {
            let schema = Catalog.schema(k);
            let own: Vec<String> = schema
                .get("properties")
                .and_then(|p| p.as_object())
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            kind_fields.push(own);
            property_names(&schema, &mut all);
        }
        for k in [
            "name",
            "description",
            "parameters",
            "resources",
            "outputs",
            "type",
            "depends_on",
            "default",
            "secret",
            "allowed",
            "value",
            "sensitive",
        ] {
            all.insert(k.to_string());
        }
        Vocab {
            kinds,
            kind_fields,
            fields: all.into_iter().collect(),
        }
    }
}

fn property_names(schema: &serde_json::Value, out: &mut BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            for v in m.values() {
                property_names(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| property_names(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Cases: a seed, mutations of its YAML tree, then of its text, and `--var`s.

#[derive(Debug, Clone)]
struct Case {
    seed: usize,
    muts: Vec<Mut>,
    text_muts: Vec<TextMut>,
    vars: Vec<(VarName, String)>,
}

/// A mutation of the parsed YAML; `at` picks a node (in document order) modulo their count.
#[derive(Debug, Clone)]
enum Mut {
    Set {
        at: usize,
        v: Leaf,
    },
    AddField {
        at: usize,
        key: Key,
        v: Leaf,
    },
    Remove {
        at: usize,
    },
    Copy {
        from: usize,
        to: usize,
    },
    /// Nests the node `depth` levels deeper, in sequences or mappings.
    Wrap {
        at: usize,
        depth: usize,
        map: bool,
    },
    AddResource {
        kind: usize,
        id: Key,
        fields: Vec<(usize, Leaf)>,
    },
    AddParam {
        name: usize,
        ty: Option<&'static str>,
        secret: bool,
        default: Option<Leaf>,
        allowed: Option<Vec<Leaf>>,
    },
}

#[derive(Debug, Clone)]
enum Key {
    Field(usize),
    Odd(String),
}

/// A value to put in the tree; references are made to fit the blueprint at hand.
#[derive(Debug, Clone)]
enum Leaf {
    Val(Value),
    /// Raw YAML text (one line, flow style): what a serialiser would never write.
    Raw(usize),
    /// `${id.attribute}` naming one of the blueprint's resources (or `${id}`), with text
    /// around it.
    Ref {
        target: usize,
        attr: usize,
        before: String,
        after: String,
    },
    /// `${params.NAME}` for one of the blueprint's parameters.
    Param {
        name: usize,
        embedded: bool,
    },
    Seq(Vec<Leaf>),
    Map(Vec<(Key, Leaf)>),
}

#[derive(Debug, Clone)]
enum TextMut {
    /// Lines inserted before a line, indented like it.
    Insert {
        line: usize,
        snippet: Snippet,
    },
    Bytes {
        at: usize,
        bytes: Vec<u8>,
        replace: bool,
    },
    Truncate {
        at: usize,
    },
    DupLine {
        line: usize,
    },
    Indent {
        line: usize,
        by: i8,
    },
}

#[derive(Debug, Clone)]
enum Snippet {
    /// `levels` anchors, each a sequence of `width` aliases of the one before.
    AliasBomb {
        width: usize,
        levels: usize,
    },
    DeepSeq(usize),
    DeepFlow(usize),
    DeepMap(usize),
    Lines(usize),
}

#[derive(Debug, Clone)]
enum VarName {
    Param(usize),
    Other(String),
}

/// One-line YAML values no serialiser writes.
const RAW: &[&str] = &[
    "1e400",
    "-1e400",
    ".nan",
    ".NaN",
    ".inf",
    "-.Inf",
    "0x7fffffff",
    "0xffffffffffffffff",
    "0o777",
    "-0",
    "+12",
    "1_000",
    "4294967300",
    "3000000000",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "0.1e-400",
    "1.7976931348623157e309",
    "~",
    "null",
    "Null",
    "yes",
    "No",
    "on",
    "!!binary aGVsbG8=",
    "!!str 12",
    "!!int 12",
    "!!float 1",
    "!custom {a: 1}",
    "!!python/object:os.system ls",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "*undefined",
    "&anchor value",
    "&a [1, *a]",
    "{a: 1, a: 2}",
    "[1, [2, [3, [4]]]]",
    "{? [a]: b}",
    "{[1, 2]: x}",
    "{1: x, 2: y}",
    "{~: x}",
    "{<<: {a: 1}}",
    "[*undefined]",
    "\"\\u0000\"",
    "\"\\x1b[31mred\\x1b[0m\"",
    "\"\\uD800\"",
    "\"\\U0010FFFF\"",
    "\"\\N\\_\\L\\P\"",
    "'it''s'",
    "\"unterminated",
    "[unclosed",
    "{unclosed: 1",
    "}",
    "]",
    "|",
    ">-",
    "- in a value",
    "a: b: c",
    "@reserved",
    "`reserved",
    "%directive",
    "\t tab",
    "x # comment",
    "#just a comment",
    "\"${a}\"",
    "${",
    "$${",
    "{${a}: 1}",
];

/// Multi-line snippets, inserted at a line's indentation.
const LINES: &[&str] = &[
    "---\nname: second-document",
    "...",
    "%YAML 1.1\n---",
    "%TAG ! tag:example.com,2000:\n---",
    "\u{feff}name: bom",
    "? complex\n: key",
    "? [a, b]\n: value",
    "<<: *undefined",
    "<<: {type: vpc}",
    "key: |\n  block\n   more\n\tmixed",
    "key: >+\n\n\n",
    "key: &x\n  a: 1\nother: *x",
    "key: \"multi\n  line\"",
    "type: vpc\ntype: subnet",
    "name: a\nname: b",
    "resources:\n  dup: {type: vpc}",
    "- item",
    "  : orphan",
    "\t: tab",
    "key:\t value",
    "a:\n- b\n- c\n  - d",
    "!!map\na: 1",
];

const ODD_KEYS: &[&str] = &[
    "",
    " ",
    "params",
    "stack",
    "<<",
    "${vpc}",
    "$${x}",
    "a.b",
    "a[0]",
    "é",
    "ＶＰＣ",
    "\u{202e}evil",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "x\ny",
    "CIDR_BLOCK",
    "cidr-block",
    "type ",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "${",
    "${}",
    "${ }",
    "${.}",
    "${a.}",
    "${.a}",
    "${a.b.c}",
    "${a b}",
    "${${a}}",
    "${a}${b}",
    "$${",
    "$${a}",
    "$$${a}",
    "$$$${a}",
    "$",
    "$$",
    "}${",
    "${a}}",
    "${params}",
    "${params.}",
    "${params.nope}",
    "${params.a.b}",
    "${stack}",
    "${stack.name}",
    "${stack.region}",
    "${stack.account_id}",
    "${stack.nope}",
    "${stack.name.x}",
    "${é}",
    "${\u{0}}",
    "..",
    "../..",
    "../../../../../../../etc/passwd",
    "/etc/passwd",
    "/etc/shadow",
    "/dev/zero",
    "/dev/stdin",
    "/proc/self/mem",
    "/proc/self/environ",
    "~/.aws/credentials",
    "C:\\Windows\\win.ini",
    "\\\\server\\share",
    "files/escape.sh",
    "files/big.sh",
    "files/editor_only",
    "files",
    "files/",
    "files//big.sh",
    "./files/flow.asl.json",
    "files/../files/flow.asl.json",
    "files/../../x",
    "files/flow.asl.json",
    "flow.yaml",
    "functions",
    "functions/validate_order",
    "functions/validate_order/",
    "link_in",
    "link_in/validate_order",
    "link_out",
    "link_out/hostname",
    "loop",
    "loop/x",
    "zero",
    "pipe",
    "empty",
    "web.sh",
    ".",
    "./",
    "functions/\u{0}",
    "file\nname",
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "::/0",
    "256.0.0.1/16",
    "10.0.0.0/16/16",
    "ami-0123456789abcdef0",
    "ami-",
    "t3.micro",
    "python3.12",
    "app.handler",
    "arn:aws:iam::123456789012:role/x",
    "arn:",
    "us-east-1a",
    "tcp",
    "-1",
    "all",
    "0",
    "NaN",
    "inf",
    "1e400",
    "true",
    "TOPSECRET-fuzz-4f1c",
    "\u{0}",
    "\u{7}",
    "\u{1b}[31m",
    "\r",
    "\u{85}",
    "\u{2028}",
    "\u{200b}",
    "\u{feff}",
    "\u{202e}",
    "e\u{301}",
    "😀",
    "𝕍ℙℂ",
    "日本語",
    "\u{fffd}",
];

const VAR_VALUES: &[&str] = &[
    "",
    "${q.arn}",
    "${params.x}",
    "$${",
    "${",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-0",
    "99999999999999999999",
    "-9223372036854775808",
    "0x10",
    "1_0",
    " 1",
    "true",
    "TRUE",
    "yes",
    "10.0.0.0/16",
    "TOPSECRET-fuzz-4f1c",
    "a=b",
    "\u{0}",
    "\u{1b}[2J",
    "😀",
];

fn case_strategy(seeds: usize, vocab: Arc<Vocab>) -> impl Strategy<Value = Case> {
    let leaf = leaf_strategy(vocab.clone());
    let key = key_strategy(vocab.fields.len());
    let kinds = vocab.kinds.len();
    let mutation = prop_oneof![
        6 => (any::<usize>(), leaf.clone()).prop_map(|(at, v)| Mut::Set { at, v }),
        4 => (any::<usize>(), key.clone(), leaf.clone())
            .prop_map(|(at, key, v)| Mut::AddField { at, key, v }),
        2 => any::<usize>().prop_map(|at| Mut::Remove { at }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Mut::Copy { from, to }),
        1 => (any::<usize>(), 1..120usize, any::<bool>())
            .prop_map(|(at, depth, map)| Mut::Wrap { at, depth, map }),
        3 => (
            0..kinds,
            key.clone(),
            proptest::collection::vec((any::<usize>(), leaf.clone()), 0..6)
        )
            .prop_map(|(kind, id, fields)| Mut::AddResource { kind, id, fields }),
        2 => (
            0..6usize,
            proptest::option::of(prop_oneof![
                Just("string"),
                Just("number"),
                Just("boolean"),
                Just("list")
            ]),
            any::<bool>(),
            proptest::option::of(leaf.clone()),
            proptest::option::of(proptest::collection::vec(leaf.clone(), 0..3)),
        )
            .prop_map(|(name, ty, secret, default, allowed)| Mut::AddParam {
                name,
                ty,
                secret,
                default,
                allowed,
            }),
    ];
    let text_mut = prop_oneof![
        3 => (any::<usize>(), snippet_strategy())
            .prop_map(|(line, snippet)| TextMut::Insert { line, snippet }),
        2 => (any::<usize>(), bytes_strategy(), any::<bool>())
            .prop_map(|(at, bytes, replace)| TextMut::Bytes { at, bytes, replace }),
        1 => any::<usize>().prop_map(|at| TextMut::Truncate { at }),
        2 => any::<usize>().prop_map(|line| TextMut::DupLine { line }),
        1 => (any::<usize>(), -4i8..4).prop_map(|(line, by)| TextMut::Indent { line, by }),
    ];
    let var_name = prop_oneof![
        3 => (0..8usize).prop_map(VarName::Param),
        1 => prop_oneof![Just(String::new()), Just("nope".to_string()), Just("a=b".to_string())]
            .prop_map(VarName::Other),
    ];
    let var_value = prop_oneof![
        3 => proptest::sample::select(VAR_VALUES).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|n| n.to_string()),
        1 => proptest::collection::vec(any::<char>(), 0..20).prop_map(String::from_iter),
    ];
    (
        0..seeds,
        proptest::collection::vec(mutation, 0..6),
        proptest::collection::vec(text_mut, 0..3),
        proptest::collection::vec((var_name, var_value), 0..3),
    )
        .prop_map(|(seed, muts, text_muts, vars)| Case {
            seed,
            muts,
            text_muts,
            vars,
        })
}

fn key_strategy(fields: usize) -> impl Strategy<Value = Key> + Clone {
    prop_oneof![
        6 => (0..fields).prop_map(Key::Field),
        1 => proptest::sample::select(ODD_KEYS).prop_map(|k| Key::Odd(k.to_string())),
        1 => "[a-z][a-z0-9_-]{0,70}".prop_map(Key::Odd),
    ]
}

fn leaf_strategy(vocab: Arc<Vocab>) -> BoxedStrategy<Leaf> {
    let number = prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(1)),
        Just(Value::from(65535)),
        Just(Value::from(65536)),
        Just(Value::from(i64::from(i32::MAX) + 1)),
        Just(Value::from(4_294_967_300u64)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(0.5)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e308)),
        Just(Value::from(f64::NAN)),
        Just(Value::from(f64::INFINITY)),
        Just(Value::from(f64::NEG_INFINITY)),
        any::<i64>().prop_map(Value::from),
        (-100_000i64..100_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
    ];
    let string = prop_oneof![
        6 => proptest::sample::select(STRINGS).prop_map(|s| Value::from(s.to_string())),
        2 => proptest::collection::vec(any::<char>(), 0..24)
            .prop_map(|c| Value::from(String::from_iter(c))),
        1 => (proptest::sample::select(&["a", "é", "${x}", "$${", "../", "😀"][..]), 1..100_000usize)
            .prop_map(|(s, n)| Value::from(s.repeat(n))),
    ];
    let scalar = prop_oneof![
        4 => number.prop_map(Leaf::Val),
        6 => string.prop_map(Leaf::Val),
        1 => any::<bool>().prop_map(|b| Leaf::Val(Value::Bool(b))),
        1 => Just(Leaf::Val(Value::Null)),
        3 => (0..RAW.len()).prop_map(Leaf::Raw),
        4 => (
            0..64usize,
            0..8usize,
            prop_oneof![Just(String::new()), Just("arn:".to_string()), Just("$".to_string())],
            prop_oneof![Just(String::new()), Just("/x".to_string()), Just("}".to_string())]
        )
            .prop_map(|(target, attr, before, after)| Leaf::Ref { target, attr, before, after }),
        2 => (0..8usize, any::<bool>()).prop_map(|(name, embedded)| Leaf::Param { name, embedded }),
    ];
    let fields = vocab.fields.len();
    scalar
        .prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Leaf::Seq),
                proptest::collection::vec((key_strategy(fields), inner), 0..4).prop_map(Leaf::Map),
            ]
        })
        .boxed()
}

fn snippet_strategy() -> impl Strategy<Value = Snippet> {
    prop_oneof![
        (1..12usize, 1..12usize).prop_map(|(width, levels)| Snippet::AliasBomb { width, levels }),
        (1..300usize).prop_map(Snippet::DeepSeq),
        (1..300usize).prop_map(Snippet::DeepFlow),
        (1..300usize).prop_map(Snippet::DeepMap),
        (0..LINES.len()).prop_map(Snippet::Lines),
    ]
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0xff]),
        Just(vec![0xc3]),
        Just(vec![0xed, 0xa0, 0x80]),
        Just(vec![0xc0, 0xaf]),
        Just(vec![0xf4, 0x90, 0x80, 0x80]),
        Just(vec![0xfe, 0xff, 0x00]),
        Just(vec![0]),
        Just(b"\x1b[31m".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        Just("\u{2028}".as_bytes().to_vec()),
        Just("\u{85}".as_bytes().to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b": ".to_vec()),
        Just(b"- ".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ]
}

// ---------------------------------------------------------------------------------------
// Turning a case into blueprint bytes and `--var`s.

#[derive(Clone)]
enum Step {
    Key(Value),
    Index(usize),
}

/// Names the case's references and variables can use: the blueprint's own.
struct Names {
    ids: Vec<(String, String)>,
    params: Vec<String>,
}

fn render(
    seeds: &[(String, Vec<u8>)],
    vocab: &Vocab,
    case: &Case,
) -> (Vec<u8>, Vec<(String, String)>) {
    let raw = &seeds[case.seed % seeds.len()].1;
    let tree: Option<Value> = std::str::from_utf8(raw)
        .ok()
        .and_then(|t| serde_yaml::from_str(t).ok());
    let mut names = tree.as_ref().map(names_of).unwrap_or(Names {
        ids: Vec::new(),
        params: Vec::new(),
    });
    let mut text = match tree {
        Some(mut tree) if !case.muts.is_empty() => {
            for m in &case.muts {
                apply(&mut tree, m, vocab, &names);
                names = names_of(&tree);
            }
            let mut s = serde_yaml::to_string(&tree).unwrap_or_default();
            for (i, r) in RAW.iter().enumerate().rev() {
                s = s.replace(&placeholder(i), r);
            }
            s.into_bytes()
        }
        _ => raw.clone(),
    };
    for t in &case.text_muts {
        mutate_text(&mut text, t);
    }
    let vars = case
        .vars
        .iter()
        .map(|(n, v)| {
            let name = match n {
                VarName::Param(i) if !names.params.is_empty() => {
                    names.params[i % names.params.len()].clone()
                }
                VarName::Param(i) => format!("p{i}"),
                VarName::Other(s) => s.clone(),
            };
            (name, v.clone())
        })
        .collect();
    (text, vars)
}

fn placeholder(i: usize) -> String {
    format!("FUZZRAW{i}Z")
}

fn names_of(tree: &Value) -> Names {
    let ids = tree
        .get("resources")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
                    Some((k.as_str()?.to_string(), kind.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let params = tree
        .get("parameters")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Names { ids, params }
}

fn key_value(k: &Key, vocab: &Vocab) -> Value {
    match k {
        Key::Field(i) => Value::from(vocab.fields[i % vocab.fields.len()].clone()),
        Key::Odd(s) => Value::from(s.clone()),
    }
}

fn leaf_value(l: &Leaf, vocab: &Vocab, names: &Names) -> Value {
    match l {
        Leaf::Val(v) => v.clone(),
        Leaf::Raw(i) => Value::from(placeholder(*i)),
        Leaf::Ref {
            target,
            attr,
            before,
            after,
        } => {
            let r = if names.ids.is_empty() {
                format!("${{r{target}}}")
            } else {
                let (id, kind) = &names.ids[target % names.ids.len()];
                let attrs = Catalog.attributes(kind);
                // One past the end: the bare `${id}`; two past: an attribute it lacks.
                match attr % (attrs.len() + 2) {
                    i if i < attrs.len() => format!("${{{id}.{}}}", attrs[i]),
                    i if i == attrs.len() => format!("${{{id}}}"),
                    _ => format!("${{{id}.nope}}"),
                }
            };
            Value::from(format!("{before}{r}{after}"))
        }
        Leaf::Param { name, embedded } => {
            let p = if names.params.is_empty() {
                format!("p{name}")
            } else {
                names.params[name % names.params.len()].clone()
            };
            if *embedded {
                Value::from(format!("x-${{params.{p}}}-y"))
            } else {
                Value::from(format!("${{params.{p}}}"))
            }
        }
        Leaf::Seq(items) => {
            Value::Sequence(items.iter().map(|i| leaf_value(i, vocab, names)).collect())
        }
        Leaf::Map(entries) => Value::Mapping(
            entries
                .iter()
                .map(|(k, v)| (key_value(k, vocab), leaf_value(v, vocab, names)))
                .collect(),
        ),
    }
}

fn nodes(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match v {
        Value::Sequence(s) => {
            for (i, x) in s.iter().enumerate() {
                path.push(Step::Index(i));
                nodes(x, path, out);
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                path.push(Step::Key(k.clone()));
                nodes(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(v: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    let next = match (first, v) {
        (Step::Index(i), Value::Sequence(s)) => s.get(*i)?,
        (Step::Key(k), Value::Mapping(m)) => m.get(k)?,
        _ => return None,
    };
    node(next, rest)
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v);
    };
    let next = match (first, v) {
        (Step::Index(i), Value::Sequence(s)) => s.get_mut(*i)?,
        (Step::Key(k), Value::Mapping(m)) => m.get_mut(k)?,
        _ => return None,
    };
    node_mut(next, rest)
}

fn all_nodes(tree: &Value) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    nodes(tree, &mut Vec::new(), &mut out);
    out
}

fn apply(tree: &mut Value, m: &Mut, vocab: &Vocab, names: &Names) {
    let all = all_nodes(tree);
    let pick = |at: usize| all[at % all.len()].clone();
    match m {
        Mut::Set { at, v } => {
            let v = leaf_value(v, vocab, names);
            if let Some(n) = node_mut(tree, &pick(*at)) {
                *n = v;
            }
        }
        Mut::AddField { at, key, v } => {
            let maps: Vec<&Vec<Step>> = all
                .iter()
                .filter(|p| matches!(node(tree, p), Some(Value::Mapping(_))))
                .collect();
            if maps.is_empty() {
                return;
            }
            let path = maps[at % maps.len()].clone();
            let (k, v) = (key_value(key, vocab), leaf_value(v, vocab, names));
            if let Some(Value::Mapping(m)) = node_mut(tree, &path) {
                m.insert(k, v);
            }
        }
        Mut::Remove { at } => {
            let path = pick(*at);
            let Some((last, parent)) = path.split_last() else {
                *tree = Value::Null;
                return;
            };
            match (node_mut(tree, parent), last) {
                (Some(Value::Sequence(s)), Step::Index(i)) if *i < s.len() => {
                    s.remove(*i);
                }
                (Some(Value::Mapping(m)), Step::Key(k)) => {
                    m.remove(k);
                }
                _ => {}
            }
        }
        Mut::Copy { from, to } => {
            let src = node(tree, &pick(*from)).cloned();
            if let (Some(src), Some(dst)) = (src, node_mut(tree, &pick(*to))) {
                *dst = src;
            }
        }
        Mut::Wrap { at, depth, map } => {
            if let Some(n) = node_mut(tree, &pick(*at)) {
                let mut v = std::mem::take(n);
                for _ in 0..*depth {
                    v = if *map {
                        let mut m = serde_yaml::Mapping::new();
                        m.insert(Value::from("k"), v);
                        Value::Mapping(m)
                    } else {
                        Value::Sequence(vec![v])
                    };
                }
                *n = v;
            }
        }
        Mut::AddResource { kind, id, fields } => {
            let kind_name = vocab.kinds[kind % vocab.kinds.len()];
            let own = &vocab.kind_fields[kind % vocab.kinds.len()];
            let mut r = serde_yaml::Mapping::new();
            r.insert(Value::from("type"), Value::from(kind_name));
            for (f, v) in fields {
                let f = if own.is_empty() {
                    "x".to_string()
                } else {
                    own[f % own.len()].clone()
                };
                r.insert(Value::from(f), leaf_value(v, vocab, names));
            }
            if let Some(Value::Mapping(res)) = tree.get_mut("resources") {
                res.insert(key_value(id, vocab), Value::Mapping(r));
            }
        }
        Mut::AddParam {
            name,
            ty,
            secret,
            default,
            allowed,
        } => {
            let mut p = serde_yaml::Mapping::new();
            if let Some(t) = ty {
                p.insert(Value::from("type"), Value::from(*t));
            }
            if *secret {
                p.insert(Value::from("secret"), Value::Bool(true));
            }
            if let Some(d) = default {
                p.insert(Value::from("default"), leaf_value(d, vocab, names));
            }
            if let Some(a) = allowed {
                let a = a.iter().map(|l| leaf_value(l, vocab, names)).collect();
                p.insert(Value::from("allowed"), Value::Sequence(a));
            }
            if let Value::Mapping(root) = tree {
                let params = root
                    .entry(Value::from("parameters"))
                    .or_insert_with(|| Value::Mapping(Default::default()));
                if let Value::Mapping(params) = params {
                    params.insert(Value::from(format!("p{name}")), Value::Mapping(p));
                }
            }
        }
    }
}

fn line_starts(text: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i <= text.len())
        .collect()
}

fn mutate_text(text: &mut Vec<u8>, m: &TextMut) {
    let starts = line_starts(text);
    let line_at = |line: usize| {
        let i = line % starts.len();
        let s = starts[i];
        let e = starts.get(i + 1).copied().unwrap_or(text.len());
        (s, e)
    };
    match m {
        TextMut::Insert { line, snippet } => {
            let (s, e) = line_at(*line);
            let indent: Vec<u8> = text[s..e]
                .iter()
                .take_while(|b| **b == b' ')
                .copied()
                .collect();
            let indent = String::from_utf8_lossy(&indent).into_owned();
            let body = snippet_text(snippet);
            let mut block = String::new();
            for l in body.lines() {
                block.push_str(&indent);
                block.push_str(l);
                block.push('\n');
            }
            text.splice(s..s, block.into_bytes());
        }
        TextMut::Bytes { at, bytes, replace } => {
            let at = if text.is_empty() { 0 } else { at % text.len() };
            let end = if *replace {
                (at + bytes.len()).min(text.len())
            } else {
                at
            };
            text.splice(at..end, bytes.iter().copied());
        }
        TextMut::Truncate { at } => {
            let at = if text.is_empty() { 0 } else { at % text.len() };
            text.truncate(at);
        }
        TextMut::DupLine { line } => {
            let (s, e) = line_at(*line);
            let mut copy = text[s..e].to_vec();
            if !copy.ends_with(b"\n") {
                copy.push(b'\n');
            }
            text.splice(e..e, copy);
        }
        TextMut::Indent { line, by } => {
            let (s, e) = line_at(*line);
            if *by >= 0 {
                text.splice(s..s, std::iter::repeat_n(b' ', *by as usize));
            } else {
                let spaces = text[s..e].iter().take_while(|b| **b == b' ').count();
                let cut = spaces.min(by.unsigned_abs() as usize);
                text.drain(s..s + cut);
            }
        }
    }
}

fn snippet_text(s: &Snippet) -> String {
    match s {
        Snippet::AliasBomb { width, levels } => {
            let mut out = String::from("bomb0: &b0 [lol]\n");
            for l in 1..=*levels {
                let items = vec![format!("*b{}", l - 1); *width].join(", ");
                out.push_str(&format!("bomb{l}: &b{l} [{items}]\n"));
            }
            out
        }
        Snippet::DeepSeq(n) => format!("deep: {}x", "- ".repeat(*n)),
        Snippet::DeepFlow(n) => format!("deep: {}1{}", "[".repeat(*n), "]".repeat(*n)),
        Snippet::DeepMap(n) => {
            let mut out = String::from("deep:\n");
            for i in 0..*n {
                out.push_str(&format!("{}k{i}:\n", " ".repeat(i + 1)));
            }
            out
        }
        Snippet::Lines(i) => LINES[*i].to_string(),
    }
}
