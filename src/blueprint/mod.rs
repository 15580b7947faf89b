//! Blueprints: loading a YAML file, substituting parameters and validating everything
//! (structure, types, references, cycles, per-kind rules) before any AWS call.
//! Nothing here knows AWS; per-kind rules come in through the [`Catalog`] trait.

pub mod diagnostic;
pub mod files;
pub mod refs;
pub mod schema;
pub mod source;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value as Json;

pub use diagnostic::{Diagnostics, Problem, Severity};
use refs::Ref;
pub use source::SourceFile;

/// What the blueprint layer needs to know about resource kinds.
pub trait Catalog {
    fn kinds(&self) -> Vec<&'static str>;
    fn has_kind(&self, kind: &str) -> bool;
    /// Attributes that `${id.attribute}` may name; the first is what `${id}` means.
    fn attributes(&self, kind: &str) -> &'static [&'static str];
    /// JSON Schema of the kind's fields (an object schema, with `$defs`).
    fn schema(&self, kind: &str) -> Json;
    /// Typed and semantic checks of one resource's fields.
    fn check(&self, kind: &str, id: &str, config: &Json, cx: &CheckCx) -> Vec<Issue>;

    /// The fields with the files they name (beside the blueprint, in `dir`) read in, when
    /// the kind has such fields: references inside the files then become dependencies
    /// and are checked like the rest. Called with parameters already substituted, so a
    /// path from a parameter is read and checked like a written one.
    fn inline_files(&self, _kind: &str, _config: &Json, _dir: &Path) -> Inlined {
        Inlined::default()
    }

    /// The names AWS will know the resource by, derived from its id, each with the
    /// namespace AWS keeps it unique in (`("target group name", "s-web-tg")`): two ids
    /// giving one name in one namespace would be one AWS resource.
    fn physical_names(&self, _kind: &str, _id: &str, _config: &Json) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What reading a resource's file fields gave (see [`Catalog::inline_files`]). A problem
/// with one file does not stop the resource's other checks.
#[derive(Debug, Default)]
pub struct Inlined {
    /// The fields with the files' contents in place; `None` when nothing was read in.
    pub config: Option<Json>,
    /// The files read, each with the field (relative to the resource) its content fills
    /// and the field that named it: problems found inside the content are placed in the
    /// file, at their own line and column.
    pub sources: Vec<FileSource>,
    /// Problems at the resource's fields (a file missing, too large, outside the folder).
    pub issues: Vec<Issue>,
    /// Problems already placed in one of `sources` (a syntax error in the file).
    pub problems: Vec<Problem>,
}

/// A file a resource's field named, read in under another field (see [`Inlined`]).
#[derive(Debug, Clone)]
pub struct FileSource {
    /// The field its content now fills, like `definition`.
    pub content: String,
    /// The field that named it, like `definition_file`.
    pub named_by: String,
    pub file: Arc<SourceFile>,
}

impl From<Issue> for Inlined {
    fn from(i: Issue) -> Self {
        Inlined {
            issues: vec![i],
            ..Inlined::default()
        }
    }
}

/// A problem a kind found in its fields; `path` is relative to the resource.
#[derive(Debug, Clone)]
pub struct Issue {
    pub path: String,
    pub message: String,
    pub help: Option<String>,
    pub warning: bool,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
            help: None,
            warning: false,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn warning(mut self) -> Self {
        self.warning = true;
        self
    }
}

/// Lets a kind's checks look at the resources its fields refer to.
pub struct CheckCx<'a> {
    pub resources: &'a IndexMap<String, Resource>,
}

impl CheckCx<'_> {
    /// The resource a field like `${main.id}` points at, if it is a plain reference.
    pub fn referenced(&self, value: &str) -> Option<&Resource> {
        match refs::scan(value).ok()?.as_slice() {
            [refs::Piece::Ref(r)] => self.resources.get(&r.target),
            _ => None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Boolean,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub ty: ParamType,
    pub description: Option<String>,
    pub secret: bool,
    pub value: Json,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub id: String,
    pub kind: String,
    /// Fields with parameters substituted; resource references still as `${...}`.
    pub config: Json,
    pub depends_on: Vec<String>,
    /// References to other resources, with the field path where each appears.
    pub refs: Vec<(String, Ref)>,
    /// Top-level fields whose value came from a secret parameter.
    pub secret_fields: BTreeSet<String>,
}

impl Resource {
    /// Ids this resource must wait for: its references and `depends_on`.
    pub fn dependencies(&self) -> BTreeSet<String> {
        self.refs
            .iter()
            .map(|(_, r)| r.target.clone())
            .chain(self.depends_on.iter().cloned())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub value: Json,
    pub description: Option<String>,
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct Blueprint {
    pub name: String,
    pub description: Option<String>,
    pub source: Arc<SourceFile>,
    /// Folder of the blueprint file: relative paths in fields start here.
    pub dir: PathBuf,
    pub parameters: IndexMap<String, Parameter>,
    pub resources: IndexMap<String, Resource>,
    pub outputs: IndexMap<String, Output>,
    /// Warnings found while validating (never errors: those stop loading).
    pub warnings: Vec<Problem>,
    /// The values of parameters with `secret: true` (as given or defaulted), so that the
    /// output can mask them wherever they surface (`crate::secrets`).
    pub secrets: Vec<String>,
}

impl Blueprint {
    /// The `${stack.…}` references of the blueprint (resources and outputs), each with the
    /// value path where it stands: what facts about the stack a plan needs to look up.
    pub fn stack_references(&self) -> Vec<(String, Ref)> {
        let mut found = Vec::new();
        for r in self.resources.values() {
            refs::collect(&r.config, &format!("resources.{}", r.id), &mut found);
        }
        for (name, o) in &self.outputs {
            refs::collect(&o.value, &format!("outputs.{name}.value"), &mut found);
        }
        found
            .into_iter()
            .filter_map(|(path, r)| Some((path, r.ok()?)))
            .filter(|(_, r)| r.target == refs::STACK)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read blueprint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Where the blueprint file of a path argument is: the file itself, or `blueprint.yaml`
/// inside a folder (so `securecart apply labs/01` works as typed).
pub fn resolve_path(arg: &Path) -> Result<PathBuf, LoadError> {
    if arg.is_dir() {
        for name in ["blueprint.yaml", "blueprint.yml"] {
            let p = arg.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        return Err(LoadError::Io {
            path: arg.join("blueprint.yaml"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the folder holds no blueprint.yaml",
            ),
        });
    }
    Ok(arg.to_path_buf())
}

/// Reads, parses and validates a blueprint, with `vars` overriding parameter defaults.
pub fn load(
    arg: &Path,
    vars: &[(String, String)],
    catalog: &dyn Catalog,
) -> Result<Blueprint, LoadError> {
    use std::io::Read;
    let path = resolve_path(arg)?;
    let io = |source| LoadError::Io {
        path: path.clone(),
        source,
    };
    // The path may be a pipe (`<(…)`) or a device: read one byte over the cap at most.
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .map_err(io)?
        .take(BLUEPRINT_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > BLUEPRINT_MAX {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} MB, too large to be a blueprint",
                BLUEPRINT_MAX / (1024 * 1024)
            ),
        )));
    }
    let name = path.display().to_string();
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Err(not_utf8(name, path.clone(), e)),
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(
        SourceFile::new(name, path.clone(), text),
        dir,
        vars,
        catalog,
    )
}

/// What a message or a file name says instead of a path that came from a secret parameter.
const FROM_SECRET: &str = "(from a secret parameter)";

/// Largest blueprint file read: far above any real one, it bounds what a wrong path
/// (`/dev/zero`, a huge log) can make securecart hold in memory.
const BLUEPRINT_MAX: u64 = 10 * 1024 * 1024;

/// A blueprint that is not UTF-8, located at its first invalid byte (shown over the text
/// with invalid bytes replaced, which keeps every offset before them).
fn not_utf8(name: String, path: PathBuf, e: std::string::FromUtf8Error) -> LoadError {
    let at = e.utf8_error().valid_up_to();
    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
    let pos = pos_at(&text, at);
    let problem = Problem::error("the blueprint is not UTF-8 text: this byte is invalid")
        .with_help(Some(
            "save the file as UTF-8; it may be Latin-1 or UTF-16".into(),
        ))
        .at_pos(pos);
    LoadError::Invalid(Diagnostics {
        file: Arc::new(SourceFile::new(name, path, text)),
        problems: vec![problem],
        secrets: Vec::new(),
    })
}

/// Parses and validates blueprint text (the pure part of [`load`]).
pub fn parse(
    file: SourceFile,
    dir: PathBuf,
    vars: &[(String, String)],
    catalog: &dyn Catalog,
) -> Result<Blueprint, LoadError> {
    let file = Arc::new(file);
    let mut v = Validator {
        file: file.clone(),
        problems: Vec::new(),
        failed_params: BTreeSet::new(),
        failed_resources: BTreeSet::new(),
        secrets: Vec::new(),
        sources: Vec::new(),
    };
    let bp = v.run(dir, vars, catalog);
    // Messages name the values they refuse ("`…` is not a valid CIDR block"): one that came
    // from a secret parameter is masked here already, so no printer can show it.
    // Control characters, terminal escapes and bidi overrides in a message (a key or value
    // echoed back) are shown escaped.
    for p in &mut v.problems {
        p.message = printable(&mask_secrets(&p.message, &v.secrets));
        p.help = p
            .help
            .as_deref()
            .map(|h| printable(&mask_secrets(h, &v.secrets)));
    }
    // The blueprint's problems first, then each named file's, each in reading order.
    v.problems.sort_by(|a, b| {
        let key = |p: &Problem| {
            (
                p.source.as_ref().map(|f| f.name.clone()),
                p.line.unwrap_or(0),
                p.column.unwrap_or(0),
            )
        };
        key(a).cmp(&key(b))
    });
    let diags = Diagnostics {
        file,
        problems: v.problems,
        secrets: v.secrets,
    };
    match bp {
        Some(mut bp) if !diags.has_errors() => {
            bp.warnings = diags.problems;
            bp.secrets = diags.secrets;
            Ok(bp)
        }
        _ => Err(LoadError::Invalid(diags)),
    }
}

/// `text` with each of `secrets` replaced by `(secret)`.
fn mask_secrets(text: &str, secrets: &[String]) -> String {
    crate::secrets::mask(text, secrets, "(secret)").into_owned()
}

const TOP_LEVEL: &[&str] = &["name", "description", "parameters", "resources", "outputs"];
const RESOURCE_META: &[&str] = &["type", "depends_on"];

/// YAML text as JSON values, or where and why it cannot be: nesting past
/// [`source::MAX_DEPTH`] is refused before anything recursive walks it, syntax errors are
/// placed where the text says (duplicate keys at the repeated key, control characters at
/// themselves), and numbers JSON cannot hold are refused where written. Blueprints and
/// the YAML files they name both go through here; problems are placed in `file`.
pub(crate) fn parse_yaml(file: &SourceFile) -> Result<Json, Vec<Problem>> {
    if let Some(pos) = file.too_deep {
        return Err(vec![Problem::error(format!(
            "nested more than {} levels deep",
            source::MAX_DEPTH
        ))
        .with_help(Some(
            "a blueprint needs a few levels; check that this is the file you meant".into(),
        ))
        .at_pos(pos)]);
    }
    // libyaml (YAML 1.1, behind serde_yaml) breaks lines at these, yaml-rust2 (YAML
    // 1.2, behind the positions) does not: the two would read different documents, and
    // every position could be wrong. Inside a quoted string, `\N`, `\L`, `\P` write them.
    // A carriage return alone (old Mac line ends) is the same trouble.
    let lone_cr = file
        .text
        .match_indices('\r')
        .find(|(i, _)| !file.text[i + 1..].starts_with('\n'))
        .map(|(i, _)| i);
    let odd_break = file.text.find(['\u{85}', '\u{2028}', '\u{2029}']);
    if let Some(offset) = [lone_cr, odd_break].into_iter().flatten().min() {
        return Err(vec![Problem::error("a line break YAML parsers disagree on (a carriage return without a line feed, NEL, LINE or PARAGRAPH SEPARATOR)")
            .with_help(Some("save the file with \\n or \\r\\n line ends; inside a double-quoted string write `\\r`, `\\N`, `\\L` or `\\P`".into()))
            .at_pos(pos_at(&file.text, offset))]);
    }
    let yaml: serde_yaml::Value = match serde_yaml::from_str(&file.text) {
        Ok(v) => v,
        Err(e) => {
            let message = strip_location(&e.to_string());
            let mut p = Problem::error(format!("invalid YAML: {message}"));
            if message.contains("repetition limit") {
                if let Some((pos, nodes)) = file.biggest_alias {
                    // serde_yaml's guard against alias bombs, with no position of its own.
                    p = p.with_help(Some(format!(
                        "aliases expand the document too far; this one alone repeats {nodes} values"
                    )));
                    p = p.at_pos(pos);
                }
            }
            // serde_yaml places these two at the mapping and at 1:1; the text knows better.
            let better = if message.contains("duplicate entry") {
                file.duplicate_key
            } else if message.contains("control characters") {
                first_control_character(&file.text)
            } else if message.contains("more than one document") {
                file.second_document.or(file.syntax_error)
            } else {
                None
            };
            if let Some(pos) = better {
                p = p.at_pos(pos);
            } else if p.line.is_some() {
                // Placed already, at the alias bomb.
            } else if let Some(loc) = e.location() {
                // Not `loc.index()`: libyaml counts that in characters, not bytes.
                let offset = file.offset_of(loc.line(), loc.column());
                p = p.at_pos(pos_at(&file.text, offset));
            } else if let Some(pos) = file.syntax_error {
                // serde_yaml gives some errors no position; the other parser may.
                p = p.at_pos(pos);
            } else {
                // Nothing more precise is known: the file as a whole.
                p = p.at_pos(pos_at(&file.text, 0));
            }
            return Err(vec![p]);
        }
    };
    // JSON has no NaN or infinity: converted, `.inf`, `.nan` and `1e400` would become
    // null and surface later as an unrelated type error, so they stop here, located.
    let mut bad = Vec::new();
    non_finite(&yaml, "", &mut bad);
    if !bad.is_empty() {
        return Err(bad
            .iter()
            .map(|path| Problem::error("not a finite number").at(file, path, false))
            .collect());
    }
    serde_json::to_value(&yaml).map_err(|e| {
        vec![Problem::error(format!("unsupported YAML: {e}"))
            .with_help(Some(
                "keys must be strings; YAML tags are not supported".into(),
            ))
            .at(file, "", false)]
    })
}

/// Closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    // Transpositions and one-letter slips (`vcp`) score low on Jaro-Winkler alone, so a
    // small edit distance counts too.
    let score = |c: &str| {
        let edits = strsim::damerau_levenshtein(given, c);
        let close = edits <= (given.len().max(c.len()) / 3).max(1);
        strsim::jaro_winkler(given, c) + if close { 1.0 } else { 0.0 }
    };
    candidates
        .into_iter()
        .map(|c| (score(c), c))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

struct Validator {
    file: Arc<SourceFile>,
    problems: Vec<Problem>,
    /// Parameters declared but left without a value because of an error already
    /// reported (a `--var` of the wrong type, a bad default): references to them are
    /// not "unknown parameter" a second time.
    failed_params: BTreeSet<String>,
    /// Resources declared but dropped because of an error already reported (an
    /// unknown or missing `type`): references to them are not "unknown resource".
    failed_resources: BTreeSet<String>,
    /// Secret parameter values met so far (see [`Blueprint::secrets`]).
    secrets: Vec<String>,
    /// Files read in, with the full value paths of the field their content fills
    /// (`resources.flow.definition`) and of the one that named them: problems under the
    /// first are placed in the file.
    sources: Vec<FileSource>,
}

impl Validator {
    fn error(&mut self, path: &str, key: bool, message: impl Into<String>, help: Option<String>) {
        let p = self.place(Problem::error(message).with_help(help), path, key);
        self.problems.push(p);
    }

    /// Points a problem at `path`: in the file read in there, when the path is inside a
    /// field filled from a file, else in the blueprint. A place the file's index cannot
    /// find (text it could not index) falls back to the field that named the file.
    fn place(&self, p: Problem, path: &str, key: bool) -> Problem {
        let inside = self.sources.iter().find_map(|s| {
            let rest = path.strip_prefix(s.content.as_str())?;
            match rest.strip_prefix('.') {
                Some(r) => Some((r, s)),
                None if rest.is_empty() || rest.starts_with('[') => Some((rest, s)),
                None => None,
            }
        });
        if let Some((rel, s)) = inside {
            let mut p = if s.file.locate(rel).is_some() {
                p.at(&s.file, rel, key).in_file(s.file.clone())
            } else {
                p.at(&self.file, &s.named_by, false)
            };
            p.path = Some(path.to_string());
            return p;
        }
        p.at(&self.file, path, key)
    }

    fn run(
        &mut self,
        dir: PathBuf,
        vars: &[(String, String)],
        catalog: &dyn Catalog,
    ) -> Option<Blueprint> {
        let root = match parse_yaml(&self.file) {
            Ok(Json::Object(m)) => m,
            Ok(Json::Null) => {
                self.error(
                    "",
                    false,
                    "the blueprint is empty",
                    Some("it needs at least `name` and `resources`".into()),
                );
                return None;
            }
            Ok(_) => {
                self.error(
                    "",
                    false,
                    "a blueprint must be a mapping with `name` and `resources`",
                    None,
                );
                return None;
            }
            Err(problems) => {
                self.problems.extend(problems);
                return None;
            }
        };
        for key in root.keys() {
            if !TOP_LEVEL.contains(&key.as_str()) {
                let help = did_you_mean(key, TOP_LEVEL.iter().copied());
                self.error(key, true, format!("unknown field `{key}`"), help);
            }
        }
        let name = match root.get("name") {
            Some(Json::String(s)) => {
                if let Err(e) = check_stack_name(s) {
                    self.error(
                        "name",
                        false,
                        format!("invalid blueprint name `{s}`: {e}"),
                        None,
                    );
                }
                s.clone()
            }
            Some(_) => {
                self.error("name", false, "`name` must be a string", None);
                String::new()
            }
            None => {
                self.error(
                    "",
                    false,
                    "missing field `name`",
                    Some(
                        "the name is the default stack name, e.g. `name: securecart-network`"
                            .into(),
                    ),
                );
                String::new()
            }
        };
        let description = match root.get("description") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error("description", false, "`description` must be a string", None);
                None
            }
        };
        let parameters = self.parameters(root.get("parameters"), vars);
        let resources = self.resources(root.get("resources"), &parameters, catalog, &dir);
        let outputs = self.outputs(root.get("outputs"), &parameters, &resources, catalog);
        self.cycles(&resources);
        self.name_collisions(&resources, catalog);
        Some(Blueprint {
            name,
            description,
            source: self.file.clone(),
            dir,
            parameters,
            resources,
            outputs,
            warnings: Vec::new(),
            secrets: Vec::new(),
        })
    }

    fn parameters(
        &mut self,
        value: Option<&Json>,
        vars: &[(String, String)],
    ) -> IndexMap<String, Parameter> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(rename = "type", default = "default_type")]
            ty: ParamType,
            #[serde(default)]
            default: Option<Json>,
            #[serde(default)]
            description: Option<String>,
            #[serde(default)]
            secret: bool,
            #[serde(default)]
            allowed: Option<Vec<Json>>,
        }
        fn default_type() -> ParamType {
            ParamType::String
        }
        let mut out = IndexMap::new();
        let map = match value {
            None | Some(Json::Null) => serde_json::Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(_) => {
                self.error(
                    "parameters",
                    false,
                    "`parameters` must be a mapping of name → definition",
                    None,
                );
                serde_json::Map::new()
            }
        };
        for (name, def) in &map {
            let path = format!("parameters.{name}");
            let raw: Raw = match serde_path_to_error::deserialize(def) {
                Ok(r) => r,
                Err(e) => {
                    let p = join_path(&path, &e.path().to_string());
                    self.error(&p, false, format!("invalid parameter: {}", e.inner()), None);
                    self.failed_params.insert(name.clone());
                    continue;
                }
            };
            let given = vars.iter().rev().find(|(k, _)| k == name);
            if raw.secret {
                // As given, before any check: even a value that fails one stays masked.
                if let Some((_, v)) = given {
                    self.secrets.push(v.clone());
                }
                if let Some(d) = &raw.default {
                    self.secrets.push(match d {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
            }
            let value = match (given, &raw.default) {
                (Some((_, v)), _) => match coerce(raw.ty, v) {
                    Ok(v) => v,
                    Err(e) => {
                        self.error(
                            &path,
                            true,
                            format!(
                                "--var {name}={}: {e}",
                                if raw.secret { "(secret)" } else { v }
                            ),
                            None,
                        );
                        self.failed_params.insert(name.clone());
                        continue;
                    }
                },
                (None, Some(d)) => {
                    if !type_matches(raw.ty, d) {
                        self.error(
                            &format!("{path}.default"),
                            false,
                            format!("default does not match type {:?}", raw.ty).to_lowercase(),
                            None,
                        );
                        self.failed_params.insert(name.clone());
                        continue;
                    }
                    d.clone()
                }
                (None, None) => {
                    self.error(
                        &path,
                        true,
                        format!("parameter `{name}` has no default and no value"),
                        Some(format!("pass --var {name}=VALUE")),
                    );
                    self.failed_params.insert(name.clone());
                    continue;
                }
            };
            if let Some(allowed) = &raw.allowed {
                if !allowed.contains(&value) {
                    // The allowed values of a secret are as good as the secret: not listed.
                    let message = if raw.secret {
                        format!("the value of secret parameter `{name}` is not one of its allowed values")
                    } else {
                        format!(
                            "parameter `{name}` = {value} is not one of the allowed values {}",
                            Json::Array(allowed.clone())
                        )
                    };
                    self.error(&path, true, message, None);
                }
            }
            if raw.secret
                && value
                    .as_str()
                    .is_some_and(|v| v.chars().count() < crate::secrets::MIN_LEN)
            {
                let mut p = Problem::error(format!(
                    "secret parameter `{name}` is shorter than {} characters: too short to be a secret, and too short to be masked wherever it appears in text",
                    crate::secrets::MIN_LEN
                ))
                .with_help(Some("the plan still hides the fields it fills; use a longer value".into()))
                .at(&self.file, &path, true);
                p.severity = Severity::Warning;
                self.problems.push(p);
            }
            out.insert(
                name.clone(),
                Parameter {
                    ty: raw.ty,
                    description: raw.description,
                    secret: raw.secret,
                    value,
                },
            );
        }
        for (k, _) in vars {
            if !map.contains_key(k) {
                let help = did_you_mean(k, map.keys().map(String::as_str));
                let mut p =
                    Problem::error(format!("--var {k}: the blueprint has no parameter `{k}`"));
                p.help = help;
                self.problems.push(p);
            }
        }
        out
    }

    fn resources(
        &mut self,
        value: Option<&Json>,
        params: &IndexMap<String, Parameter>,
        catalog: &dyn Catalog,
        dir: &Path,
    ) -> IndexMap<String, Resource> {
        let map = match value {
            Some(Json::Object(m)) => m.clone(),
            None | Some(Json::Null) => {
                self.error("", false, "missing field `resources`", None);
                return IndexMap::new();
            }
            Some(_) => {
                self.error(
                    "resources",
                    false,
                    "`resources` must be a mapping of id → resource",
                    None,
                );
                return IndexMap::new();
            }
        };
        let mut out = IndexMap::new();
        let mut broken = BTreeSet::new();
        for (id, decl) in &map {
            let path = format!("resources.{id}");
            if let Err(e) = check_resource_id(id) {
                self.error(
                    &path,
                    true,
                    format!("invalid resource id `{id}`: {e}"),
                    None,
                );
            }
            let Json::Object(fields) = decl else {
                self.error(
                    &path,
                    false,
                    format!("resource `{id}` must be a mapping with a `type`"),
                    None,
                );
                self.failed_resources.insert(id.clone());
                continue;
            };
            let kind = match fields.get("type") {
                Some(Json::String(k)) if catalog.has_kind(k) => k.clone(),
                Some(Json::String(k)) => {
                    let help = did_you_mean(k, catalog.kinds())
                        .or_else(|| Some(format!("known types: {}", catalog.kinds().join(", "))));
                    self.error(
                        &format!("{path}.type"),
                        false,
                        format!("unknown resource type `{k}`"),
                        help,
                    );
                    self.failed_resources.insert(id.clone());
                    continue;
                }
                _ => {
                    self.error(
                        &path,
                        true,
                        format!("resource `{id}` has no `type`"),
                        Some(format!("one of: {}", catalog.kinds().join(", "))),
                    );
                    self.failed_resources.insert(id.clone());
                    continue;
                }
            };
            let depends_on = match fields.get("depends_on") {
                None => Vec::new(),
                Some(Json::Array(a)) if a.iter().all(Json::is_string) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                Some(_) => {
                    self.error(
                        &format!("{path}.depends_on"),
                        false,
                        "`depends_on` must be a list of resource ids",
                        None,
                    );
                    Vec::new()
                }
            };
            let mut config = serde_json::Map::new();
            for (k, v) in fields {
                if !RESOURCE_META.contains(&k.as_str()) {
                    config.insert(k.clone(), v.clone());
                }
            }
            let mut secret_fields = BTreeSet::new();
            let mut config = Json::Object(config);
            let mut params_ok =
                self.substitute_params(&path, &mut config, params, &mut secret_fields);
            // After the parameters, so a path from one is read and checked like any other.
            let inlined = catalog.inline_files(&kind, &config, dir);
            params_ok &= self.read_in(&path, dir, inlined, &mut config, params, &mut secret_fields);
            if !params_ok {
                // Kind checks would only repeat the parameter error in other words.
                broken.insert(id.clone());
            }
            out.insert(
                id.clone(),
                Resource {
                    id: id.clone(),
                    kind,
                    config,
                    depends_on,
                    refs: Vec::new(),
                    secret_fields,
                },
            );
        }
        // References and kind checks need the whole set of resources.
        let ids: Vec<String> = out.keys().cloned().collect();
        for id in &ids {
            let path = format!("resources.{id}");
            let res = &out[id];
            let mut found = Vec::new();
            refs::collect(&res.config, "", &mut found);
            let mut good = Vec::new();
            for (p, r) in found {
                let at = join_path(&path, &p);
                match r {
                    Err(e) => self.error(&at, false, e, None),
                    Ok(r) => {
                        if self.check_ref(&at, &r, Some(id), &out, catalog) {
                            good.push((p, r));
                        }
                    }
                }
            }
            for (i, d) in res.depends_on.clone().iter().enumerate() {
                if !out.contains_key(d) && !self.failed_resources.contains(d) {
                    let help = did_you_mean(d, out.keys().map(String::as_str));
                    self.error(
                        &format!("{path}.depends_on[{i}]"),
                        false,
                        format!("`depends_on` names an unknown resource `{d}`"),
                        help,
                    );
                }
            }
            let kind = res.kind.clone();
            let mut config = res.config.clone();
            // Unknown fields are reported here with suggestions and removed, so the
            // kind's typed parse does not report them a second time.
            self.unknown_fields(&path, &mut config, &catalog.schema(&kind));
            let issues = if broken.contains(id) {
                Vec::new()
            } else {
                catalog.check(&kind, id, &config, &CheckCx { resources: &out })
            };
            for i in issues {
                // A problem with the resource as a whole (a missing field) points at its id.
                let mut p = self.place(
                    Problem::error(i.message).with_help(i.help),
                    &join_path(&path, &i.path),
                    i.path.is_empty(),
                );
                if i.warning {
                    p.severity = Severity::Warning;
                }
                self.problems.push(p);
            }
            if let Some(r) = out.get_mut(id) {
                r.refs = good;
            }
        }
        out
    }

    fn outputs(
        &mut self,
        value: Option<&Json>,
        params: &IndexMap<String, Parameter>,
        resources: &IndexMap<String, Resource>,
        catalog: &dyn Catalog,
    ) -> IndexMap<String, Output> {
        let mut out = IndexMap::new();
        let map = match value {
            None | Some(Json::Null) => return out,
            Some(Json::Object(m)) => m.clone(),
            Some(_) => {
                self.error(
                    "outputs",
                    false,
                    "`outputs` must be a mapping of name → value",
                    None,
                );
                return out;
            }
        };
        for (name, v) in map {
            let path = format!("outputs.{name}");
            let (mut value, description, mut sensitive) = match v {
                Json::Object(m) if m.contains_key("value") => {
                    for k in m.keys() {
                        if !["value", "description", "sensitive"].contains(&k.as_str()) {
                            self.error(
                                &format!("{path}.{k}"),
                                true,
                                format!("unknown field `{k}`"),
                                Some("an output has `value`, `description` and `sensitive`".into()),
                            );
                        }
                    }
                    (
                        m["value"].clone(),
                        m.get("description")
                            .and_then(Json::as_str)
                            .map(String::from),
                        m.get("sensitive").and_then(Json::as_bool).unwrap_or(false),
                    )
                }
                other => (other, None, false),
            };
            let mut secret = BTreeSet::new();
            let _ = self.substitute_params(&path, &mut value, params, &mut secret);
            sensitive |= !secret.is_empty();
            let mut found = Vec::new();
            refs::collect(&value, "", &mut found);
            for (p, r) in found {
                let at = join_path(&path, &p);
                match r {
                    Err(e) => self.error(&at, false, e, None),
                    Ok(r) => {
                        self.check_ref(&at, &r, None, resources, catalog);
                    }
                }
            }
            out.insert(
                name,
                Output {
                    value,
                    description,
                    sensitive,
                },
            );
        }
        out
    }

    /// Takes in what reading a resource's file fields gave: the problems (a path that came
    /// from a secret parameter is not shown: the messages and the file's name say where it
    /// came from instead), the files for placing later problems, and the fields filled
    /// from files, whose parameters are substituted here. False when those named an
    /// unknown parameter.
    fn read_in(
        &mut self,
        path: &str,
        dir: &Path,
        inlined: Inlined,
        config: &mut Json,
        params: &IndexMap<String, Parameter>,
        secret: &mut BTreeSet<String>,
    ) -> bool {
        let field_of = |p: &str| p.split(['.', '[']).next().unwrap_or_default().to_string();
        let secret_path = |field: &str| {
            secret
                .contains(field)
                .then(|| config.get(field).and_then(Json::as_str).map(str::to_string))
                .flatten()
        };
        for i in inlined.issues {
            let mut message = i.message;
            if let Some(v) = secret_path(&field_of(&i.path)) {
                // The loader quotes paths in backticks, alone or leading a code file's
                // path: only those are replaced, not the same letters in other words.
                message = message
                    .replace(&format!("`{v}`"), FROM_SECRET)
                    .replace(&format!("`{v}/"), &format!("`{FROM_SECRET}/"));
            }
            self.error(&join_path(path, &i.path), false, message, i.help);
        }
        let mut problems = inlined.problems;
        for mut s in inlined.sources {
            if secret_path(&field_of(&s.named_by)).is_some() {
                let masked = Arc::new(SourceFile::new(
                    dir.join(FROM_SECRET).display().to_string(),
                    PathBuf::new(),
                    s.file.text.clone(),
                ));
                for p in &mut problems {
                    if p.source.as_ref().is_some_and(|f| Arc::ptr_eq(f, &s.file)) {
                        p.source = Some(masked.clone());
                    }
                }
                s.file = masked;
            }
            s.content = join_path(path, &s.content);
            s.named_by = join_path(path, &s.named_by);
            self.sources.push(s);
        }
        self.problems.extend(problems);
        let Some(Json::Object(new)) = inlined.config else {
            return true;
        };
        // Only what came from files: the rest had its parameters substituted already.
        let fresh: serde_json::Map<String, Json> = new
            .iter()
            .filter(|(k, v)| config.get(k.as_str()) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut fresh = Json::Object(fresh);
        let ok = self.substitute_params(path, &mut fresh, params, secret);
        *config = Json::Object(new);
        if let (Json::Object(c), Json::Object(f)) = (config, fresh) {
            c.extend(f);
        }
        ok
    }

    /// Replaces `${params.X}` and `${stack.name}`-free parameter references in place.
    fn substitute_params(
        &mut self,
        path: &str,
        value: &mut Json,
        params: &IndexMap<String, Parameter>,
        secret: &mut BTreeSet<String>,
    ) -> bool {
        let mut found = Vec::new();
        refs::collect(value, "", &mut found);
        let mut bad = false;
        for (p, r) in &found {
            let Ok(r) = r else { continue };
            if r.target != refs::PARAMS {
                continue;
            }
            let at = join_path(path, p);
            match r
                .attribute
                .as_deref()
                .and_then(|a| params.get(a).map(|x| (a, x)))
            {
                Some((_, param)) => {
                    if param.secret {
                        secret.insert(p.split(['.', '[']).next().unwrap_or_default().to_string());
                    }
                }
                None => {
                    bad = true;
                    let name = r.attribute.clone().unwrap_or_default();
                    if self.failed_params.contains(&name) {
                        // Its declaration or value was reported already.
                        continue;
                    }
                    let help = did_you_mean(&name, params.keys().map(String::as_str));
                    self.error(
                        &at,
                        false,
                        format!("unknown parameter `{name}` in `{r}`"),
                        help,
                    );
                }
            }
        }
        if bad {
            return false;
        }
        if found.is_empty() {
            return true;
        }
        let lookup = |r: &Ref| {
            if r.target != refs::PARAMS {
                return None;
            }
            params
                .get(r.attribute.as_deref()?)
                .map(|p| refs::Resolved::Known(p.value.clone()))
        };
        // Resource references are resolved later: what this pass leaves is still a
        // template, with `$${` escapes kept for that pass.
        *value = refs::substitute_template(value, &lookup);
        true
    }

    /// Checks that a reference names a resource and one of its attributes.
    fn check_ref(
        &mut self,
        at: &str,
        r: &Ref,
        from: Option<&str>,
        resources: &IndexMap<String, Resource>,
        catalog: &dyn Catalog,
    ) -> bool {
        if r.target == refs::PARAMS {
            return false;
        }
        if r.target == refs::STACK {
            let attribute = r.attribute.as_deref().unwrap_or_default();
            let (ok, help) = match refs::split_index(attribute) {
                Some(("zones", _)) => (true, ""),
                _ if attribute == "zones" => (
                    false,
                    "`zones` is the region's list of availability zones: pick one by its \
                     position, like ${stack.zones[0]}",
                ),
                _ => (
                    matches!(attribute, "name" | "region" | "partition" | "account_id"),
                    "use ${stack.name}, ${stack.region}, ${stack.partition}, ${stack.account_id} or \
                     ${stack.zones[N]} (the region's Nth availability zone, from 0)",
                ),
            };
            if !ok {
                self.error(
                    at,
                    false,
                    format!("unknown stack attribute in `{r}`"),
                    Some(help.into()),
                );
            }
            return false;
        }
        let Some(target) = resources.get(&r.target) else {
            if self.failed_resources.contains(&r.target) {
                // Its declaration was reported already (an unknown `type`): one error
                // for the root cause, not one more per reference.
                return false;
            }
            let help = did_you_mean(&r.target, resources.keys().map(String::as_str));
            self.error(
                at,
                false,
                format!("reference `{r}` names an unknown resource `{}`", r.target),
                help,
            );
            return false;
        };
        if from == Some(r.target.as_str()) {
            self.error(
                at,
                false,
                format!("resource `{}` refers to itself in `{r}`", r.target),
                None,
            );
            return false;
        }
        if let Some(a) = &r.attribute {
            let attrs = catalog.attributes(&target.kind);
            if !attrs.contains(&a.as_str()) {
                let help = did_you_mean(a, attrs.iter().copied())
                    .or_else(|| Some(format!("a {} has: {}", target.kind, attrs.join(", "))));
                self.error(
                    at,
                    false,
                    format!("`{}` ({}) has no attribute `{a}`", r.target, target.kind),
                    help,
                );
                return false;
            }
        }
        true
    }

    /// Reports every field that the kind's schema does not know, with a suggestion.
    fn unknown_fields(&mut self, path: &str, value: &mut Json, schema: &Json) {
        let defs = schema.get("$defs").cloned().unwrap_or(Json::Null);
        self.walk_unknown(path, value, schema, &defs);
    }

    fn walk_unknown(&mut self, path: &str, value: &mut Json, schema: &Json, defs: &Json) {
        let schema = resolve_schema(schema, defs);
        if let Some(all) = schema.get("allOf").and_then(Json::as_array) {
            if all.len() == 1 {
                return self.walk_unknown(path, value, &all[0], defs);
            }
        }
        match value {
            Json::Object(map) => {
                let Some(props) = schema.get("properties").and_then(Json::as_object) else {
                    return;
                };
                let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
                let mut unknown = Vec::new();
                for (k, v) in map.iter_mut() {
                    let p = join_path(path, k);
                    match props.get(k) {
                        Some(s) => self.walk_unknown(&p, v, s, defs),
                        None if closed => {
                            let help =
                                did_you_mean(k, props.keys().map(String::as_str)).or_else(|| {
                                    Some(format!(
                                        "known fields: {}",
                                        props.keys().cloned().collect::<Vec<_>>().join(", ")
                                    ))
                                });
                            self.error(&p, true, format!("unknown field `{k}`"), help);
                            unknown.push(k.clone());
                        }
                        None => {}
                    }
                }
                for k in unknown {
                    map.remove(&k);
                }
            }
            Json::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter_mut().enumerate() {
                        self.walk_unknown(&format!("{path}[{i}]"), v, item, defs);
                    }
                }
            }
            _ => {}
        }
    }

    /// Two ids that give one AWS name (`web_tg` and `web-tg`: names allow no `_`) would
    /// fight over one resource, and apply would fail on whichever comes second. One
    /// check for every kind, driven by the names the kinds derive from ids.
    fn name_collisions(&mut self, resources: &IndexMap<String, Resource>, catalog: &dyn Catalog) {
        let mut seen: HashMap<(String, String), String> = HashMap::new();
        for r in resources.values() {
            for (what, name) in catalog.physical_names(&r.kind, &r.id, &r.config) {
                let key = (what.clone(), name);
                match seen.get(&key) {
                    None => {
                        seen.insert(key, r.id.clone());
                    }
                    Some(first) => {
                        let at = self
                            .file
                            .locate(&format!("resources.{first}"))
                            .map(|l| {
                                let p = l.key.unwrap_or(l.value);
                                format!(" (at {}:{})", p.line, p.column)
                            })
                            .unwrap_or_default();
                        self.error(
                            &format!("resources.{}", r.id),
                            true,
                            format!(
                                "`{}` and `{first}`{at} give the same {what} in AWS, so they would be one resource",
                                r.id
                            ),
                            Some("rename one of them: AWS names keep only the characters AWS allows (others become `-`), and some compare without case".into()),
                        );
                    }
                }
            }
        }
    }

    fn cycles(&mut self, resources: &IndexMap<String, Resource>) {
        let edges: Vec<(String, String)> = resources
            .values()
            .flat_map(|r| {
                r.dependencies()
                    .into_iter()
                    .filter(|d| resources.contains_key(d))
                    .map(move |d| (r.id.clone(), d))
            })
            .collect();
        for cycle in crate::graph::cycles(resources.keys().cloned(), &edges) {
            let first = cycle[0].clone();
            let mut shown = cycle.clone();
            shown.push(first.clone());
            self.error(
                &format!("resources.{first}"),
                true,
                format!("dependency cycle: {}", shown.join(" → ")),
                Some("remove one of the references or depends_on entries on this cycle".into()),
            );
        }
    }
}

fn resolve_schema<'a>(schema: &'a Json, defs: &'a Json) -> &'a Json {
    match schema
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => defs.get(name).unwrap_or(schema),
        None => schema,
    }
}

/// Joins a base path and a relative one (`a.b` + `c[0]` → `a.b.c[0]`).
pub fn join_path(base: &str, rel: &str) -> String {
    let rel = if rel == "." { "" } else { rel };
    match (base.is_empty(), rel.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => rel.to_string(),
        (false, false) if rel.starts_with('[') => format!("{base}{rel}"),
        _ => format!("{base}.{rel}"),
    }
}

/// Messages quote what the blueprint says (keys, values, `--var`s), and they go to a
/// terminal one per line: a line break, an escape sequence or a bidi override in a key
/// would break the line, drive the terminal or hide text, so such characters show escaped.
fn printable(s: &str) -> String {
    if !s.chars().any(unprintable) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if unprintable(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Where the first character YAML does not allow (a C0 control other than tab and line
/// breaks, DEL, or a C1 control) sits.
fn first_control_character(text: &str) -> Option<source::Pos> {
    let (offset, _) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'))?;
    Some(pos_at(text, offset))
}

/// The line and column of a byte offset (at a character boundary) in `text`.
pub(crate) fn pos_at(text: &str, offset: usize) -> source::Pos {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    source::Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        offset,
        // The whole character: a span ending inside one is no span the renderer can show.
        len: text[offset..].chars().next().map_or(0, char::len_utf8),
    }
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ").or_else(|| msg.find(" at position ")) {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Paths of the numbers in `v` that JSON cannot hold (NaN, infinities).
fn non_finite(v: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
            out.push(path.to_string())
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                non_finite(item, &format!("{path}[{i}]"), out);
            }
        }
        serde_yaml::Value::Mapping(m) => {
            for (k, item) in m {
                // Keys that are not strings are refused with their own error later.
                if let Some(k) = k.as_str() {
                    non_finite(item, &join_path(path, k), out);
                }
            }
        }
        serde_yaml::Value::Tagged(t) => non_finite(&t.value, path, out),
        _ => {}
    }
}

fn coerce(ty: ParamType, v: &str) -> Result<Json, String> {
    match ty {
        ParamType::String => Ok(Json::String(v.to_string())),
        ParamType::Number => match v.parse::<i64>() {
            Ok(n) => Ok(Json::from(n)),
            Err(_) => match v.parse::<f64>() {
                // `NaN`, `inf` and `1e400` parse as floats but are no number a field takes
                // (and JSON would turn them into null).
                Ok(f) if !f.is_finite() => Err("not a finite number".to_string()),
                Ok(f) => Ok(Json::from(f)),
                Err(_) => Err("expected a number".to_string()),
            },
        },
        ParamType::Boolean => v
            .parse::<bool>()
            .map(Json::Bool)
            .map_err(|_| "expected true or false".to_string()),
    }
}

fn type_matches(ty: ParamType, v: &Json) -> bool {
    matches!(
        (ty, v),
        (ParamType::String, Json::String(_))
            | (ParamType::Number, Json::Number(_))
            | (ParamType::Boolean, Json::Bool(_))
    )
}

/// Stack names become part of every physical name, so they stay short and plain.
pub fn check_stack_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 40 {
        return Err("it must be 1 to 40 characters".into());
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("it must start with a letter".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!("`{c}` is not allowed: use letters, digits and `-`"));
    }
    if s.ends_with('-') || s.contains("--") {
        return Err("it must not end with `-` or contain `--`".into());
    }
    Ok(())
}

fn check_resource_id(s: &str) -> Result<(), String> {
    if s == refs::PARAMS || s == refs::STACK {
        return Err(format!("`{s}` is reserved for ${{{s}.…}} references"));
    }
    if s.is_empty() || s.len() > 64 {
        return Err("it must be 1 to 64 characters".into());
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("it must start with a letter".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed: use letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

/// The stack's ids in the order they were declared, with each one's dependencies.
pub fn dependency_map(bp: &Blueprint) -> HashMap<String, BTreeSet<String>> {
    bp.resources
        .values()
        .map(|r| (r.id.clone(), r.dependencies()))
        .collect()
}

#[cfg(test)]
mod tests;
