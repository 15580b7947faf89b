//! The secret values of this run (parameters with `secret: true`, generated passwords), so
//! that whatever is printed — plans, JSON, progress lines, errors from AWS — can be masked by
//! value as a last line of defence behind the field-level `(sensitive)` marking.
//!
//! Why by value as well: a secret reaches text through paths no field marking sees (an AWS
//! error quoting the request, a validation message naming the bad value, a template that
//! embeds it in a longer string). The README promises secrets never appear on screen, so the
//! one place that writes (`render`) masks every registered value, in every form it can take
//! there (as written, JSON-escaped).
//!
//! Process-wide on purpose: it is a filter on the process's output, like a log redactor, and
//! the values are registered as soon as they are known (blueprint load, password generation).

use std::borrow::Cow;
use std::sync::RwLock;

/// What a masked value is replaced with.
pub const MASK: &str = "(sensitive)";

/// Values shorter than this are not masked by value: masking every `ab` in every message
/// would make the output unreadable and hide nothing (a two-letter secret is guessed at
/// once). The loader warns about such a secret; field-level masking still hides it.
pub const MIN_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value: from now on no printed text contains it.
pub fn register(value: &str) {
    if value.chars().count() < MIN_LEN {
        return;
    }
    let mut forms = vec![value.to_string()];
    // Inside JSON documents (`--json`, AWS error bodies quoted back) the value is escaped.
    if let Ok(quoted) = serde_json::to_string(value) {
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != value {
            forms.push(escaped.to_string());
        }
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        if !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    mask(text, &all, MASK)
}

/// `text` with each of `secrets` (of at least [`MIN_LEN`] characters) replaced by `with`,
/// longest first so a secret that contains another is masked whole. The one masking
/// routine: the output's registry and the validator's own list both use it.
pub fn mask<'a>(text: &'a str, secrets: &[String], with: &str) -> Cow<'a, str> {
    let mut found: Vec<&String> = secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_LEN && text.contains(s.as_str()))
        .collect();
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in found {
        out = out.replace(s.as_str(), with);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked_in_every_form() {
        register("TOPSECRET-\"q\"-xyz");
        register("TOPSECRET");
        let plain = "password TOPSECRET-\"q\"-xyz and TOPSECRET alone";
        assert_eq!(redact(plain), "password (sensitive) and (sensitive) alone");
        let json = serde_json::json!({ "p": "TOPSECRET-\"q\"-xyz" }).to_string();
        assert!(!redact(&json).contains("TOPSECRET"), "{}", redact(&json));
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
