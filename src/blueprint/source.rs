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
    /// Where a second document starts (`---` after a first one), or where the text stops
    /// being YAML: serde_yaml refuses both, but says where only for some syntax errors.
    pub second_document: Option<Pos>,
    pub syntax_error: Option<Pos>,
    /// The alias that stands for the most nodes (the first, among equals), with how many:
    /// where an alias bomb is, when serde_yaml refuses one with no position.
    pub biggest_alias: Option<(Pos, u64)>,
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
            second_document: None,
            syntax_error: None,
            biggest_alias: None,
        };
        // yaml-rust2's `load` recurses once per level: thousands of nested `- ` overflow
        // the stack. The event stream is flat, so depth is measured on it first.
        let scan = scan(&file.text);
        file.second_document = scan.second_document.map(|m| file.pos_of(&m, 1));
        file.syntax_error = scan.syntax_error.map(|m| file.pos_of(&m, 1));
        file.biggest_alias = scan.biggest_alias.map(|(m, n)| (file.pos_of(&m, 1), n));
        if let Some(mark) = scan.too_deep {
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
        let loaded = parser.load(&mut builder, false).is_ok();
        let (mut out, duplicate) = (builder.out, builder.duplicate);
        // yaml-rust2 may stop where libyaml (behind serde_yaml) reads on: what it indexed
        // up to there stays, and later paths fall back to their ancestors, the root at
        // worst, which sits where the two parsers part. A file of only blanks and comments
        // has no root node: what is wrong with it ("the blueprint is empty") is at its start.
        let start = Pos {
            line: 1,
            column: 1,
            offset: 0,
            len: 0,
        };
        let root = if loaded {
            start
        } else {
            file.syntax_error.unwrap_or(start)
        };
        out.entry(String::new()).or_insert(Located {
            key: None,
            value: root,
        });
        file.index = out;
        file.duplicate_key = duplicate;
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
            if p.is_empty() {
                return None;
            }
            // Up to the parent; the root (`""`) is the parent of a top-level key.
            let cut = p.rfind(['.', '[']).unwrap_or(0);
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
        // Never past the line's end into the next one.
        let line_text = &line_text[..line_text.find('\n').unwrap_or(line_text.len())];
        let within: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        (start + within).min(self.text.len())
    }

    fn pos_of(&self, m: &Marker, len_hint: usize) -> Pos {
        // yaml-rust2 columns are 0-based. Its marker can sit past the text (the empty
        // value of a last `key:` without a line break is on the line after it): the
        // position comes back from the clamped offset, so it is always inside the text.
        let offset = self.offset_of(m.line().max(1), m.col() + 1);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        // The length is the value's, which escapes and folding make differ from the
        // source's: it is cut to the text, at a character boundary.
        let mut end = offset.saturating_add(len_hint).min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        Pos {
            line,
            column,
            offset,
            len: end - offset,
        }
    }
}

/// What one flat pass over the events finds (markers, turned into positions by the caller).
#[derive(Default)]
struct Scan {
    too_deep: Option<Marker>,
    second_document: Option<Marker>,
    syntax_error: Option<Marker>,
    biggest_alias: Option<(Marker, u64)>,
}

/// One pass over the events, one at a time, so it uses no stack whatever the input.
/// Syntax errors end it; the scanner's own flow-depth limit (255 open brackets, hit while
/// it looks ahead for a key) counts as too deep.
fn scan(text: &str) -> Scan {
    let mut out = Scan::default();
    let mut documents = 0;
    // Nodes an anchor stands for, aliases expanded (saturating: a bomb grows exponentially).
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<(usize, u64)> = Vec::new();
    out.too_deep = first_too_deep(text, &mut |ev, mark| {
        let size = match ev {
            Ok(Event::DocumentStart) => {
                documents += 1;
                if documents == 2 && out.second_document.is_none() {
                    out.second_document = Some(*mark);
                }
                return;
            }
            Err(()) => {
                out.syntax_error = Some(*mark);
                return;
            }
            Ok(Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _)) => {
                open.push((*anchor, 1));
                return;
            }
            Ok(Event::SequenceEnd | Event::MappingEnd) => {
                let Some((anchor, size)) = open.pop() else {
                    return;
                };
                if anchor != 0 {
                    sizes.insert(anchor, size);
                }
                size
            }
            Ok(Event::Scalar(_, _, anchor, _)) => {
                if *anchor != 0 {
                    sizes.insert(*anchor, 1);
                }
                1
            }
            Ok(Event::Alias(anchor)) => {
                let size = sizes.get(anchor).copied().unwrap_or(1);
                if out.biggest_alias.is_none_or(|(_, n)| size > n) {
                    out.biggest_alias = Some((*mark, size));
                }
                size
            }
            Ok(_) => return,
        };
        if let Some((_, total)) = open.last_mut() {
            *total = total.saturating_add(size);
        }
    });
    out
}

/// The marker of the first node nested deeper than [`MAX_DEPTH`], counting what an alias
/// stands for (an alias of a deep anchor nests that anchor's depth again). Every event
/// (or the syntax error that ends the pass) goes to `seen` too.
fn first_too_deep(text: &str, seen: &mut dyn FnMut(Result<&Event, ()>, &Marker)) -> Option<Marker> {
    let mut parser = Parser::new_from_str(text);
    // Open collections: (anchor id, height of the deepest child collection so far).
    let mut open: Vec<(usize, usize)> = Vec::new();
    // Anchor id → height of the anchored node (0 for a scalar).
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) if e.info().contains("recursion limit") => return Some(*e.marker()),
            Err(e) => {
                seen(Err(()), e.marker());
                return None;
            }
        };
        seen(Ok(&ev), &mark);
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
