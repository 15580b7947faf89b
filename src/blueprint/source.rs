//! Source text of a blueprint and a map from value paths to positions, so that every
//! diagnostic can point at file:line:column even after the YAML became plain values.

use std::collections::{HashMap, HashSet};
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
    /// Where the nesting first goes deeper than [`MAX_DEPTH`]: the file is then refused
    /// before anything recursive (the index, serde_yaml, the checks) walks it.
    pub too_deep: Option<Pos>,
    /// The first key that repeats one earlier in its mapping (serde_yaml points at the
    /// mapping instead).
    pub duplicate_key: Option<Pos>,
}

/// Deepest nesting of mappings and sequences a blueprint may have, aliases expanded.
/// Real blueprints (inline state machine definitions included) stay well under 30; the
/// limit sits below serde_yaml's own recursion limit (128), so that one never fires
/// unlocated, and keeps every recursive walk of the values far from the stack's end.
pub const MAX_DEPTH: usize = 100;

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
            too_deep: None,
            duplicate_key: None,
        };
        // yaml-rust2's `load` recurses once per level: thousands of nested `- ` overflow
        // the stack. The event stream is flat, so depth is measured on it first.
        if let Some(mark) = first_too_deep(&file.text) {
            file.too_deep = Some(file.pos_of(&mark, 1));
            return file;
        }
        // A file that does not scan gets no index; serde_yaml reports the syntax error.
        let mut builder = IndexBuilder {
            file: &file,
            stack: Vec::new(),
            out: HashMap::new(),
            duplicate: None,
        };
        let mut parser = Parser::new_from_str(&file.text);
        if parser.load(&mut builder, false).is_ok() {
            let (out, duplicate) = (builder.out, builder.duplicate);
            file.index = out;
            file.duplicate_key = duplicate;
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

/// The marker of the first node nested deeper than [`MAX_DEPTH`], counting what an alias
/// stands for (an alias of a deep anchor nests that anchor's depth again). Reads events
/// one at a time, so it uses no stack whatever the input. Syntax errors end the check:
/// serde_yaml reports them with their position, except the scanner's own flow-depth
/// limit (255 open brackets, hit while it looks ahead for a key), which is this error.
fn first_too_deep(text: &str) -> Option<Marker> {
    let mut parser = Parser::new_from_str(text);
    // Open collections: (anchor id, height of the deepest child collection so far).
    let mut open: Vec<(usize, usize)> = Vec::new();
    // Anchor id → height of the anchored node (0 for a scalar).
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) if e.info().contains("recursion limit") => return Some(*e.marker()),
            Err(_) => return None,
        };
        let leaf = match ev {
            Event::StreamEnd => return None,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Some(mark);
                }
                open.push((anchor, 0));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, inner) = open.pop()?;
                if anchor != 0 {
                    anchors.insert(anchor, inner + 1);
                }
                inner + 1
            }
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    anchors.insert(anchor, 0);
                }
                0
            }
            Event::Alias(anchor) => {
                let height = anchors.get(&anchor).copied().unwrap_or(0);
                if open.len() + height > MAX_DEPTH {
                    return Some(mark);
                }
                height
            }
            _ => continue,
        };
        if let Some((_, inner)) = open.last_mut() {
            *inner = (*inner).max(leaf);
        }
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
        seen: HashSet<String>,
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
    duplicate: Option<Pos>,
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
            Some(Frame::Map { path, key, .. }) => match key.take() {
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
                        if let Some(Frame::Map { key, seen, .. }) = self.stack.last_mut() {
                            if !seen.insert(value.clone()) && self.duplicate.is_none() {
                                self.duplicate = Some(pos);
                            }
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
                    self.stack.push(Frame::Map {
                        path,
                        key: None,
                        seen: HashSet::new(),
                    });
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
    fn deep_nesting_is_found_without_recursion() {
        let depth = |text: &str| file(text).too_deep.map(|p| (p.line, p.column));
        // 100,000 levels: any recursive walk would overflow the stack.
        assert_eq!(depth(&"- ".repeat(100_000)), Some((1, 2 * MAX_DEPTH + 1)));
        // Unclosed brackets stop the scanner's look-ahead at 255 levels.
        let flow = depth(&"[".repeat(100_000)).expect("too deep");
        assert!(
            flow.0 == 1 && flow.1 > MAX_DEPTH && flow.1 < 300,
            "{flow:?}"
        );
        let flow_maps = depth(&"{a: ".repeat(100_000)).expect("too deep");
        assert!(flow_maps.0 == 1 && flow_maps.1 > MAX_DEPTH, "{flow_maps:?}");
        let closed = format!("{}1{}", "[".repeat(4_000), "]".repeat(4_000));
        assert_eq!(depth(&closed).map(|p| p.0), Some(1));
        let block_maps: String = (0..4_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert_eq!(depth(&block_maps).map(|p| p.0), Some(MAX_DEPTH + 1));
        // Exactly at the limit is fine.
        let ok = format!("{}x{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(depth(&ok), None);
        assert!(file(&ok).locate_exact("").is_some());
    }

    #[test]
    fn aliases_count_the_depth_they_stand_for() {
        let half = MAX_DEPTH / 2 + 1;
        let deep = format!(
            "a: &x {}1{}\nb: {}*x{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let at = file(&deep).too_deep.expect("too deep through the alias");
        assert_eq!(at.line, 2);
        let shallow = "a: &x [[1]]\nb: [*x, *x]\n";
        assert!(file(shallow).too_deep.is_none());
    }

    #[test]
    fn the_first_repeated_key_is_found() {
        let f = file("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\na: 4\n");
        let at = f.duplicate_key.expect("duplicate");
        assert_eq!((at.line, at.column), (5, 3));
        assert!(file("a: 1\nb: {a: 2}\n").duplicate_key.is_none());
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let f = file("description: é\nname: x\n");
        let l = f.locate("name").unwrap();
        assert_eq!(&f.text[l.value.offset..l.value.offset + 1], "x");
    }
}
