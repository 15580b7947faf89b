//! Checks of blueprint fields that point at other resources (`${vpc}`, `${tg.arn}`, or a
//! literal id), shared by every kind: one copy, so all kinds agree on what a reference is.

use crate::blueprint::refs::{self, Piece};
use crate::blueprint::{CheckCx, Issue};

use super::common;

/// True when the value is plain text, without any `${...}` reference: only such a value
/// can be checked before plan.
pub fn is_literal(value: &str) -> bool {
    matches!(refs::scan(value).as_deref(), Ok([Piece::Lit(_)]))
}

/// True when the value still holds a `${...}` reference (resolved only at plan time).
pub fn has_ref(value: &str) -> bool {
    matches!(refs::scan(value), Ok(p) if p.iter().any(|p| matches!(p, Piece::Ref(_))))
}

/// Checks a field that names another resource's AWS id: either exactly one reference
/// to a resource of `kind` (`${x}` or `${x.id}`), or a literal id starting with `prefix`.
pub fn check_id_ref(
    path: &str,
    value: &str,
    cx: &CheckCx,
    kind: &str,
    prefix: &str,
) -> Option<Issue> {
    check_pointer(path, value, cx, kind, Wants::Id { prefix })
}

/// Checks a field that names another resource's ARN: exactly one reference to a
/// resource of `kind` (`${x}` or `${x.arn}`), or a literal ARN.
pub fn check_arn_ref(path: &str, value: &str, cx: &CheckCx, kind: &str) -> Option<Issue> {
    check_pointer(path, value, cx, kind, Wants::Arn)
}

/// What a field that points at another resource takes from it.
#[derive(Clone, Copy)]
enum Wants<'a> {
    /// Its id; a literal one starts with `prefix`.
    Id { prefix: &'a str },
    /// Its ARN; a literal one starts with `arn:`, and a longer template is left to plan.
    Arn,
}

fn check_pointer(path: &str, value: &str, cx: &CheckCx, kind: &str, wants: Wants) -> Option<Issue> {
    let pieces = refs::scan(value).ok()?;
    let (attribute, what, example) = match wants {
        Wants::Id { prefix } => (
            "id",
            "id",
            format!(
                "a reference like `${{my_{kind}}}`, or the id of an existing one (`{prefix}…`)"
            ),
        ),
        Wants::Arn => (
            "arn",
            "ARN",
            format!("a reference like `${{my_{kind}}}`, or the ARN of an existing one"),
        ),
    };
    let not_one = |noun: &str| {
        Some(Issue::new(path, format!("`{value}` is not a {noun}")).help(format!("use {example}")))
    };
    match pieces.as_slice() {
        [Piece::Ref(r)] => {
            if r.target == refs::STACK {
                return not_one(kind);
            }
            // An unknown target is already reported by the blueprint checks.
            let target = cx.resources.get(&r.target)?;
            if target.kind != kind {
                return Some(
                    Issue::new(
                        path,
                        format!(
                            "`{value}` refers to `{}` (type {}); `{path}` needs a {kind}",
                            r.target, target.kind
                        ),
                    )
                    .help(format!("use {example}")),
                );
            }
            match r.attribute.as_deref() {
                None => None,
                Some(a) if a == attribute => None,
                Some(a) => Some(
                    Issue::new(
                        path,
                        format!("`{path}` needs the {kind}'s {what}, not its `{a}`"),
                    )
                    .help(format!("write `${{{}}}`", r.target)),
                ),
            }
        }
        [Piece::Lit(l)] => match wants {
            Wants::Id { prefix } if l.starts_with(prefix) => None,
            Wants::Arn if l.starts_with("arn:") => None,
            Wants::Id { .. } => not_one(kind),
            Wants::Arn => not_one(&format!("{kind} ARN")),
        },
        _ => match wants {
            Wants::Arn if has_ref(value) => None,
            Wants::Id { .. } => not_one(kind),
            Wants::Arn => not_one(&format!("{kind} ARN")),
        },
    }
}

/// What identifies the resource a field points at: the target of a reference (so
/// `${v}` and `${v.id}` agree) or the literal id.
pub fn ref_key(value: &str) -> String {
    match refs::scan(value).ok().as_deref() {
        Some([Piece::Ref(r)]) => format!("${{{}}}", r.target),
        _ => value.to_string(),
    }
}

/// Sorted ids without repeats (values still unknown stay, one each).
pub fn id_set(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup_by(|a, b| a == b && !common::unknown(a));
    v
}

/// A zone's name (`us-east-1a`, `us-west-2-lax-1b`) or its ID (`use1-az1`, the same data
/// centre in every account). Plan checks it against the region's zones; here only its form.
pub fn looks_like_zone(s: &str) -> bool {
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let mut rev = s.chars().rev();
    let name = rev.next().is_some_and(|c| c.is_ascii_lowercase())
        && rev.next().is_some_and(|c| c.is_ascii_digit());
    let id = s
        .rsplit_once("-az")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    ok_chars && s.contains('-') && (name || id)
}

/// Checks a field that names an availability zone: a zone name or ID, or a reference
/// (`${stack.zones[0]}`), which plan resolves and checks.
pub fn check_zone(path: &str, value: &str) -> Option<Issue> {
    (!has_ref(value) && !looks_like_zone(value)).then(|| {
        Issue::new(path, format!("`{value}` is not an availability zone")).help(
            "use `${stack.zones[0]}` (the region's first zone, whatever its letter), a zone \
             name like `us-east-1a` or a zone ID like `use1-az1`",
        )
    })
}
