//! The htpasswd file: parsing as passlib does (rewritten with `kvmd_core::fs::write_atomic`).
//!
//! One `user:hash` per line; blank lines and lines whose first non-blank character is `#`
//! are ignored (and kept when the file is rewritten); trailing whitespace is ignored; a
//! line that does not split into exactly two fields on `:` makes the whole file invalid;
//! for duplicate users the first line wins (spec `auth.md` section 8).

/// A parse failure, with the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected exactly one ':' between user and hash")]
pub struct ParseError {
    /// The offending line.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Other(String),
    /// `user:hash`.
    Entry { user: String, hash: String },
}

/// A parsed htpasswd file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Htpasswd {
    lines: Vec<Line>,
}

impl Htpasswd {
    /// Parses the file text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let mut parts = line.split(':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(user), Some(hash), None) => {
                    lines.push(Line::Entry { user: user.to_owned(), hash: hash.to_owned() });
                }
                _ => return Err(ParseError { line: i + 1 }),
            }
        }
        Ok(Self { lines })
    }

    /// The hash of `user` (the first line for that user).
    pub fn get(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry { user: u, hash } if u == user => Some(hash.as_str()),
            _ => None,
        })
    }

    /// The users, sorted, without duplicates.
    pub fn users(&self) -> Vec<&str> {
        let mut u: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Entry { user, .. } => Some(user.as_str()),
                Line::Other(_) => None,
            })
            .collect();
        u.sort_unstable();
        u.dedup();
        u
    }

    /// Sets the hash of `user`: replaces its first line, or appends one.
    pub fn set(&mut self, user: &str, new_hash: String) {
        for l in &mut self.lines {
            if let Line::Entry { user: u, hash } = l
                && u == user
            {
                *hash = new_hash;
                return;
            }
        }
        self.lines.push(Line::Entry { user: user.to_owned(), hash: new_hash });
    }

    /// Removes every line of `user`; returns whether there was one.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| !matches!(l, Line::Entry { user: u, .. } if u == user));
        before != self.lines.len()
    }

    /// The file text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Other(s) => out.push_str(s),
                Line::Entry { user, hash } => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(hash);
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The atomic rewrite every state file of the suite uses (kept here for the CLIs' callers).
pub use kvmd_core::fs::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passlib_rules() {
        let text = "# comment\n\n  # indented comment\nadmin:{SSHA512}x   \nbob:plain\nadmin:second\n";
        let h = Htpasswd::parse(text).unwrap_or_default();
        assert_eq!(h.get("admin"), Some("{SSHA512}x"), "first line wins, trailing blanks ignored");
        assert_eq!(h.get("bob"), Some("plain"));
        assert_eq!(h.get("carol"), None);
        assert_eq!(h.users(), ["admin", "bob"]);
        assert_eq!(Htpasswd::parse("admin:a:b\n"), Err(ParseError { line: 1 }));
        assert_eq!(Htpasswd::parse("ok:x\njustauser\n"), Err(ParseError { line: 2 }));
        assert_eq!(Htpasswd::parse("").map(|h| h.users().len()), Ok(0));
    }

    #[test]
    fn rewrite_keeps_comments() {
        let mut h = Htpasswd::parse("# users\nadmin:old\n").unwrap_or_default();
        h.set("admin", "new".into());
        h.set("bob", "b".into());
        assert_eq!(h.render(), "# users\nadmin:new\nbob:b\n");
        assert!(h.remove("admin"));
        assert!(!h.remove("admin"));
        assert_eq!(h.render(), "# users\nbob:b\n");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(text in "(?s).{0,400}") {
            if let Ok(h) = Htpasswd::parse(&text) {
                let again = Htpasswd::parse(&h.render());
                proptest::prop_assert!(again.is_ok());
                let again = again.unwrap_or_default();
                proptest::prop_assert_eq!(again.users(), h.users());
            }
        }
    }
}
