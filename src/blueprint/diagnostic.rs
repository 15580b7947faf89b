//! Blueprint problems as positioned diagnostics: collected all at once, printed as
//! `file:line:column: message` in logs and as annotated source snippets on a terminal.
//! A problem inside a file the blueprint names (a state machine's `definition_file`)
//! carries that file, and is printed with its name, its lines and its snippet.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};

use super::source::{Pos, SourceFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in a blueprint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Value path inside the blueprint, e.g. `resources.web.ingress[0].port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip)]
    pub span: Option<(usize, usize)>,
    /// The file the line, column and span are in, when it is not the blueprint itself.
    #[serde(
        rename = "file",
        skip_serializing_if = "Option::is_none",
        serialize_with = "file_name"
    )]
    pub source: Option<Arc<SourceFile>>,
}

fn file_name<S: serde::Serializer>(f: &Option<Arc<SourceFile>>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(&f.name),
        None => s.serialize_none(),
    }
}

impl Problem {
    pub fn error(message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            help: None,
            path: None,
            line: None,
            column: None,
            span: None,
            source: None,
        }
    }

    /// Says the problem's position is in `file`, a file the blueprint names.
    pub fn in_file(mut self, file: Arc<SourceFile>) -> Self {
        self.source = Some(file);
        self
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn at_pos(mut self, pos: Pos) -> Self {
        self.line = Some(pos.line);
        self.column = Some(pos.column);
        self.span = Some((pos.offset, pos.len));
        self
    }

    /// Points the problem at the value (or, with `key`, the key) found at `path`.
    pub fn at(mut self, file: &SourceFile, path: &str, key: bool) -> Self {
        self.path = Some(path.to_string());
        if let Some(l) = file.locate(path) {
            let exact = file.locate_exact(path).is_some();
            let pos = match (key || !exact, l.key) {
                (true, Some(k)) => k,
                _ => l.value,
            };
            self = self.at_pos(pos);
        }
        self
    }
}

/// Every problem found in one blueprint file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub file: Arc<SourceFile>,
    pub problems: Vec<Problem>,
    /// Secret parameter values seen before the errors stopped loading: the one who prints
    /// these problems masks them (a message or the quoted source may hold one).
    pub secrets: Vec<String>,
}

impl Diagnostics {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for Diagnostics {
    /// The plain form: one `file:line:column: severity: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let file = p.source.as_ref().unwrap_or(&self.file);
            write!(f, "{}", file.name)?;
            if let (Some(l), Some(c)) = (p.line, p.column) {
                write!(f, ":{l}:{c}")?;
            }
            let sev = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, ": {sev}: {}", p.message)?;
            if let Some(h) = &p.help {
                write!(f, " ({h})")?;
            }
        }
        Ok(())
    }
}

/// One problem as a miette diagnostic, for the annotated-snippet rendering.
#[derive(Debug)]
pub struct ProblemReport {
    problem: Problem,
    src: NamedSource<Arc<str>>,
}

impl ProblemReport {
    pub fn all(d: &Diagnostics) -> Vec<ProblemReport> {
        // One copy of the text for all: a generated blueprint can have thousands of problems.
        let text: Arc<str> = Arc::from(d.file.text.as_str());
        d.problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (file, text) = match &p.source {
                    Some(f) => (f, Arc::from(f.text.as_str())),
                    None => (&d.file, text.clone()),
                };
                let language = if file.name.to_ascii_lowercase().ends_with(".json") {
                    "json"
                } else {
                    "yaml"
                };
                ProblemReport {
                    problem: Problem {
                        span: p
                            .span
                            .filter(|&s| i < SNIPPETS_MAX && showable(&file.text, s)),
                        ..p.clone()
                    },
                    src: NamedSource::new(file.name.clone(), text).with_language(language),
                }
            })
            .collect()
    }
}

/// Problems shown with a source snippet; past these, each finding a line scans the text
/// again (thousands of problems in a large file take seconds), and no one reads that many
/// snippets: the rest show their message, and every one its `file:line:column` line.
const SNIPPETS_MAX: usize = 100;

/// Longest source line shown in a snippet. miette pads the underline with a format width,
/// which Rust caps at 65,535 (past that it panics), and a line that long shows nothing on
/// a terminal anyway: the problem is then rendered without its snippet, and the plain
/// `file:line:column` line still points at it.
const SNIPPET_LINE_MAX: usize = 4096;

fn showable(text: &str, (offset, len): (usize, usize)) -> bool {
    let (Some(before), Some(after)) = (text.get(..offset), text.get(offset.saturating_add(len)..))
    else {
        return false;
    };
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let end = text.len() - after.len() + after.find('\n').unwrap_or(after.len());
    text[start..end]
        .split('\n')
        .all(|l| l.len() <= SNIPPET_LINE_MAX)
}

impl fmt::Display for ProblemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for ProblemReport {}

impl miette::Diagnostic for ProblemReport {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.problem
            .span
            .map(|_| &self.src as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.problem.span?;
        let span = SourceSpan::new(offset.into(), len);
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".to_string()),
            span,
        ))))
    }
}
