//! `${...}` interpolation: finding references in strings and substituting their values.
//! `$${` escapes a literal `${`.

use serde_json::Value as Json;

/// Shown wherever a value is only known once apply has created what it refers to.
pub const UNKNOWN: &str = "(known after apply)";

/// Reserved reference roots: `${params.NAME}` and `${stack.name}` / `${stack.region}`.
pub const PARAMS: &str = "params";
pub const STACK: &str = "stack";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Ref(Ref),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    pub target: String,
    pub attribute: Option<String>,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.attribute {
            Some(a) => write!(f, "${{{}.{a}}}", self.target),
            None => write!(f, "${{{}}}", self.target),
        }
    }
}

/// An attribute naming one item of a list, `zones[2]`, as (`zones`, 2).
pub fn split_index(attribute: &str) -> Option<(&str, usize)> {
    let (name, rest) = attribute.split_once('[')?;
    let index = rest.strip_suffix(']')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, index.parse().ok()?))
}

/// Splits a string into literal pieces and references.
pub fn scan(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            lit.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated reference in `{s}`: missing `}}`"))?;
            let inner = body[..end].trim();
            if inner.is_empty() {
                return Err("empty reference `${}`".into());
            }
            let mut parts = inner.splitn(2, '.');
            let target = parts.next().unwrap_or_default().to_string();
            let attribute = parts.next().map(str::to_string);
            let valid = |p: &str| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            // An attribute may pick one item of a list: `${stack.zones[0]}`.
            let valid_attribute = |p: &str| match split_index(p) {
                Some((name, _)) => valid(name),
                None => valid(p) && !p.contains('['),
            };
            if !valid(&target) || !attribute.as_deref().map(valid_attribute).unwrap_or(true) {
                return Err(format!(
                    "malformed reference `${{{inner}}}`: expected `${{id}}`, `${{id.attribute}}` \
                     or `${{id.attribute[index]}}`"
                ));
            }
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            out.push(Piece::Ref(Ref { target, attribute }));
            rest = &body[end + 1..];
        } else {
            lit.push('$');
            rest = &after[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// Every reference in a JSON value, with the value path (relative, dotted) where it sits.
pub fn collect(value: &Json, path: &str, out: &mut Vec<(String, Result<Ref, String>)>) {
    match value {
        Json::String(s) => match scan(s) {
            Ok(pieces) => {
                // Once per string: `${x}` written 100,000 times is one reference to
                // check (and report), not 100,000.
                let mut seen = std::collections::HashSet::new();
                for p in pieces {
                    if let Piece::Ref(r) = p {
                        if seen.insert(r.clone()) {
                            out.push((path.to_string(), Ok(r)));
                        }
                    }
                }
            }
            Err(e) => out.push((path.to_string(), Err(e))),
        },
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{path}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect(v, &p, out);
            }
        }
        _ => {}
    }
}

/// What a reference resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// A value; a string when embedded in a longer string.
    Known(Json),
    Unknown,
}

/// Substitutes every reference in `value`. A string that is exactly one reference takes
/// the referenced value as is (so a number stays a number); a string with an unknown
/// reference becomes [`UNKNOWN`] as a whole. Unresolvable references are left as written.
pub fn substitute(value: &Json, lookup: &dyn Fn(&Ref) -> Option<Resolved>) -> Json {
    fill(value, lookup, &|s: &str| s.to_string())
}

/// Like [`substitute`], for a pass that fills in some references (parameters) and leaves
/// the rest for later: the result is still a template, so literal text keeps its `$${`
/// escape and an inserted string value is escaped too. Unescaping there would turn a
/// written `$${x}`, or a value holding `${`, into a reference on the next pass.
pub fn substitute_template(value: &Json, lookup: &dyn Fn(&Ref) -> Option<Resolved>) -> Json {
    fill(value, lookup, &escape)
}

/// The substitution both passes share; `lit_out` makes literal text final (as is) or keeps it
/// a template (escaped).
fn fill(
    value: &Json,
    lookup: &dyn Fn(&Ref) -> Option<Resolved>,
    lit_out: &dyn Fn(&str) -> String,
) -> Json {
    match value {
        Json::String(s) => {
            let Ok(pieces) = scan(s) else {
                return value.clone();
            };
            if let [Piece::Ref(r)] = pieces.as_slice() {
                return match lookup(r) {
                    Some(Resolved::Known(Json::String(v))) => Json::String(lit_out(&v)),
                    Some(Resolved::Known(v)) => v,
                    Some(Resolved::Unknown) => Json::String(UNKNOWN.into()),
                    None => value.clone(),
                };
            }
            // Literal text (written or inserted) gathers in `lit` and goes out as a whole,
            // so a `$` and a `{` from two pieces cannot meet as a `${` in a template.
            let mut out = String::new();
            let mut lit = String::new();
            for p in pieces {
                match p {
                    Piece::Lit(l) => lit.push_str(&l),
                    Piece::Ref(r) => match lookup(&r) {
                        Some(Resolved::Known(Json::String(s))) => lit.push_str(&s),
                        Some(Resolved::Known(v)) => lit.push_str(&v.to_string()),
                        Some(Resolved::Unknown) => return Json::String(UNKNOWN.into()),
                        None => {
                            out.push_str(&lit_out(&std::mem::take(&mut lit)));
                            out.push_str(&r.to_string());
                        }
                    },
                }
            }
            out.push_str(&lit_out(&lit));
            Json::String(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(|v| fill(v, lookup, lit_out)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, lookup, lit_out)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Literal text written back into a template: every `${` becomes `$${`.
fn escape(s: &str) -> String {
    s.replace("${", "$${")
}

/// True when any string inside still waits for a value from apply.
pub fn has_unknown(value: &Json) -> bool {
    match value {
        Json::String(s) => s == UNKNOWN,
        Json::Array(a) => a.iter().any(has_unknown),
        Json::Object(m) => m.values().any(has_unknown),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, a: Option<&str>) -> Piece {
        Piece::Ref(Ref {
            target: t.into(),
            attribute: a.map(Into::into),
        })
    }

    #[test]
    fn scans_references_literals_and_escapes() {
        assert_eq!(
            scan("arn:${q.arn}/x").unwrap(),
            vec![
                Piece::Lit("arn:".into()),
                r("q", Some("arn")),
                Piece::Lit("/x".into())
            ]
        );
        assert_eq!(scan("${vpc}").unwrap(), vec![r("vpc", None)]);
        assert_eq!(
            scan("cost $5 $${lit}").unwrap(),
            vec![Piece::Lit("cost $5 ${lit}".into())]
        );
        assert!(scan("${vpc").unwrap_err().contains("unterminated"));
        assert!(scan("${a b}").unwrap_err().contains("malformed"));
    }

    #[test]
    fn substitutes_whole_and_embedded_references() {
        let lookup = |r: &Ref| match r.target.as_str() {
            "port" => Some(Resolved::Known(json!(5432))),
            "vpc" => Some(Resolved::Known(json!("vpc-1"))),
            "new" => Some(Resolved::Unknown),
            _ => None,
        };
        let v = json!({"p": "${port}", "s": "id=${vpc}", "u": "x-${new.arn}", "k": ["${nope}"]});
        let out = substitute(&v, &lookup);
        assert_eq!(
            out,
            json!({"p": 5432, "s": "id=vpc-1", "u": UNKNOWN, "k": ["${nope}"]})
        );
        assert!(has_unknown(&out));
    }

    #[test]
    fn a_partial_pass_keeps_escapes_and_the_final_pass_removes_them() {
        let params = |r: &Ref| match (r.target.as_str(), r.attribute.as_deref()) {
            ("params", Some("env")) => Some(Resolved::Known(json!("prod"))),
            ("params", Some("tricky")) => Some(Resolved::Known(json!("a${q.arn}"))),
            ("params", Some("port")) => Some(Resolved::Known(json!(8080))),
            _ => None,
        };
        let v = json!({
            "lit": "hello $${name}",
            "mixed": "${params.env}-$${x}-${q.url}",
            "value": "${params.tricky}",
            "embedded": "v=${params.tricky}",
            "split": "${params.env}$${params.env}",
            "number": "${params.port}",
            "plain": "no refs",
        });
        let t = substitute_template(&v, &params);
        assert_eq!(
            t,
            json!({
                "lit": "hello $${name}",
                "mixed": "prod-$${x}-${q.url}",
                "value": "a$${q.arn}",
                "embedded": "v=a$${q.arn}",
                "split": "prod$${params.env}",
                "number": 8080,
                "plain": "no refs",
            })
        );
        // Only `q.url` is left to resolve: the escapes and inserted values never are.
        let mut refs = Vec::new();
        collect(&t, "", &mut refs);
        let found: Vec<String> = refs
            .into_iter()
            .map(|(p, r)| format!("{p} {}", r.unwrap()))
            .collect();
        assert_eq!(found, vec!["mixed ${q.url}"]);
        let resources = |r: &Ref| (r.target == "q").then(|| Resolved::Known(json!("https://q")));
        assert_eq!(
            substitute(&t, &resources),
            json!({
                "lit": "hello ${name}",
                "mixed": "prod-${x}-https://q",
                "value": "a${q.arn}",
                "embedded": "v=a${q.arn}",
                "split": "prod${params.env}",
                "number": 8080,
                "plain": "no refs",
            })
        );
    }

    #[test]
    fn collects_reference_paths() {
        let mut out = Vec::new();
        collect(&json!({"a": ["${x.id}"], "b": {"c": "${y}"}}), "", &mut out);
        let paths: Vec<_> = out.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["a[0]", "b.c"]);
    }
}
