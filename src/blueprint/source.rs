//! Source text of a blueprint and a map from value paths to positions, so that every
//! diagnostic can point at file:line:column even after the YAML became plain values.

use std::collections::HashMap;
use std::path::PathBuf;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the source: 1-based line and column, and the byte offset for spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

/// Where a path sits in the file: its key (for "unknown field") and its value.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub key: Option<Pos>,
    pub value: Pos,
}

#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user typed it (what diagnostics print).
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    index: HashMap<String, Located>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: String, path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut file = SourceFile {
            name,
            path,
            text,
            index: HashMap::new(),
            line_starts,
        };
        // A file that does not scan gets no index; serde_yaml reports the syntax error.
        let mut builder = IndexBuilder {
            file: &file,
            stack: Vec::new(),
            out: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(&file.text);
        if parser.load(&mut builder, false).is_ok() {
            let out = builder.out;
            file.index = out;
        }
        file
    }

    /// Position of the value at `path` (e.g. `resources.web.ingress[0].port`), falling back
    /// to the nearest ancestor that has one.
    pub fn locate(&self, path: &str) -> Option<Located> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.index.get(&p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }

    /// Exact lookup, without walking up to a parent.
    pub fn locate_exact(&self, path: &str) -> Option<Located> {
        self.index.get(path).copied()
    }

    /// Byte offset of a 1-based line and column (as serde_yaml reports them).
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        let line_text = &self.text[start..];
        let within: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        (start + within).min(self.text.len())
    }

    fn pos_of(&self, m: &Marker, len_hint: usize) -> Pos {
        // yaml-rust2 columns are 0-based.
        let line = m.line().max(1);
        let column = m.col() + 1;
        let offset = self.offset_of(line, column);
        Pos {
            line,
            column,
            offset,
            len: len_hint,
        }
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

struct IndexBuilder<'a> {
    file: &'a SourceFile,
    stack: Vec<Frame>,
    out: HashMap<String, Located>,
}

impl IndexBuilder<'_> {
    /// Path of the node that starts now, and the key position if it is a mapping value.
    /// Returns None when the node is a mapping key (recorded for later).
    fn child(&mut self) -> Option<(String, Option<Pos>)> {
        match self.stack.last_mut() {
            None => Some((String::new(), None)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some((p, None))
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some((k, kpos)) => {
                    let p = if path.is_empty() {
                        k
                    } else {
                        format!("{path}.{k}")
                    };
                    Some((p, Some(kpos)))
                }
                None => None,
            },
        }
    }
}

impl MarkedEventReceiver for IndexBuilder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                let pos = self.file.pos_of(&mark, value.len().max(1));
                match self.child() {
                    Some((path, key)) => {
                        self.out.insert(path, Located { key, value: pos });
                    }
                    None => {
                        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                            *key = Some((value, pos));
                        }
                    }
                }
            }
            Event::Alias(_) => {
                let pos = self.file.pos_of(&mark, 1);
                if let Some((path, key)) = self.child() {
                    self.out.insert(path, Located { key, value: pos });
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let pos = self.file.pos_of(&mark, 1);
                let (path, key) = self.child().unwrap_or_default();
                self.out.insert(path.clone(), Located { key, value: pos });
                if matches!(ev, Event::MappingStart(..)) {
                    self.stack.push(Frame::Map { path, key: None });
                } else {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::new("t.yaml".into(), "t.yaml".into(), text.into())
    }

    #[test]
    fn indexes_nested_keys_and_sequences() {
        let f = file("name: x\nresources:\n  vpc:\n    type: vpc\n    rules:\n      - port: 80\n      - port: 443\n");
        let l = f.locate("resources.vpc.type").unwrap();
        assert_eq!((l.value.line, l.value.column), (4, 11));
        assert_eq!(l.key.map(|k| (k.line, k.column)), Some((4, 5)));
        let l = f.locate("resources.vpc.rules[1].port").unwrap();
        assert_eq!((l.value.line, l.value.column), (7, 15));
        assert_eq!(&f.text[l.value.offset..l.value.offset + 3], "443");
    }

    #[test]
    fn falls_back_to_the_parent() {
        let f = file("resources:\n  vpc:\n    type: vpc\n");
        let l = f.locate("resources.vpc.cidr_block").unwrap();
        assert_eq!(l.key.map(|k| k.line), Some(2));
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let f = file("description: é\nname: x\n");
        let l = f.locate("name").unwrap();
        assert_eq!(&f.text[l.value.offset..l.value.offset + 1], "x");
    }
}
