//! Input validation shared by server and CLI, so bad input is refused before anything changes.

use std::collections::BTreeMap;

/// Sandbox and network names become DNS labels (`<sandbox>.<network>.internal`), so they follow
/// RFC 1123 label rules, lower case. Names may not look like ids (`sbx-…`, `net-…`) so that
/// `{id-or-name}` lookups are never ambiguous.
pub fn name(kind: &str, s: &str) -> Result<(), String> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if s.is_empty() || s.len() > 63 || !ok_chars || s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "invalid {kind} name `{s}`: use 1-63 lower-case letters, digits and '-', not starting or ending with '-'"
        ));
    }
    if s.starts_with("sbx-") || s.starts_with("net-") {
        return Err(format!("invalid {kind} name `{s}`: the prefixes `sbx-` and `net-` are reserved for ids"));
    }
    Ok(())
}

/// Environment variable names as POSIX shells accept them; values without NUL bytes.
pub fn env(vars: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in vars {
        let mut bytes = k.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid environment variable name `{k}`: use letters, digits and '_', not starting with a digit"));
        }
        if v.contains('\0') {
            return Err(format!("environment variable `{k}` contains a NUL byte"));
        }
    }
    Ok(())
}

/// Image references are `NAME:TAG`; both parts are path components on the node, so they are
/// restricted to a safe alphabet.
pub fn image_ref(s: &str) -> Result<(&str, &str), String> {
    let err = || format!("invalid image reference `{s}`: write NAME:TAG, e.g. devbox:1 (letters, digits, '.', '_', '-')");
    let (n, t) = s.split_once(':').ok_or_else(err)?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && !p.starts_with('.')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !part_ok(n) || !part_ok(t) {
        return Err(err());
    }
    Ok((n, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["api", "worker-2", "a", "team-eval"] {
            assert!(name("sandbox", good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in ["", "-a", "a-", "Api", "a_b", "a.b", "sbx-1", "net-x", long.as_str(), "ä"] {
            assert!(name("sandbox", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        let ok = BTreeMap::from([("A_1".to_string(), "x y".to_string()), ("_".into(), "".into())]);
        assert!(env(&ok).is_ok());
        for bad in ["1A", "A-B", "", "A B"] {
            assert!(env(&BTreeMap::from([(bad.to_string(), "v".to_string())])).is_err(), "{bad}");
        }
        assert!(env(&BTreeMap::from([("A".to_string(), "a\0b".to_string())])).is_err());
    }

    #[test]
    fn image_refs() {
        assert_eq!(image_ref("devbox:1"), Ok(("devbox", "1")));
        assert_eq!(image_ref("my_img:v1.2-rc"), Ok(("my_img", "v1.2-rc")));
        for bad in ["devbox", ":1", "a:", "../x:1", "a:../b", "a/b:1", ".x:1", "a:b:c"] {
            assert!(image_ref(bad).is_err(), "{bad}");
        }
    }
}
