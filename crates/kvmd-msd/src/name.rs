//! kvmd's validators of the MSD arguments (spec `atx-msd-gpio-redfish.md` 3.1, 3.6, 3.8,
//! 3.9): image names, URLs, compression modes.

use kvmd_core::ApiError;
use kvmd_core::valid;

const NAME: &str = "MSD image name";

/// Python's `str.strip()`: Unicode white space, and the four separators `\x1c`..`\x1f`
/// that Python also counts.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// `valid_stripped_string`: the argument must be there; stripped.
pub fn stripped(arg: Option<&str>) -> Result<&str, ApiError> {
    arg.map(py_strip).ok_or_else(|| valid::none_error("stripped string"))
}

/// `valid_msd_image_name`: stripped; split on `/` with empty parts dropped; each part
/// stripped, not starting with `.`, not `lost+found`, cut to 255 characters, with every
/// character Python does not print as `_`. `""` is allowed only where `empty_ok` (an
/// unselect).
pub fn image_name(arg: Option<&str>, empty_ok: bool) -> Result<String, ApiError> {
    let Some(arg) = arg else { return Err(valid::none_error(NAME)) };
    valid::check_raw(arg, 4096)?;
    let v = py_strip(arg);
    if v.is_empty() {
        return if empty_ok { Ok(String::new()) } else { Err(valid::invalid_error(v, NAME)) };
    }
    let mut parts = Vec::new();
    for part in v.split('/').filter(|p| !p.is_empty()) {
        valid::check_raw(part, 512)?;
        let p = py_strip(part);
        if p.is_empty() {
            return Err(valid::none_error(NAME));
        }
        if p.starts_with('.') || p == "lost+found" {
            return Err(valid::invalid_error(p, NAME));
        }
        let p: String = p.chars().take(255).map(|c| if valid::is_py_printable(c) { c } else { '_' }).collect();
        parts.push(p);
    }
    if parts.is_empty() {
        return Err(valid::invalid_error(v, NAME));
    }
    Ok(parts.join("/"))
}

/// `prefix + "/" + image`, validated as one name (`write`, `write_remote`).
pub fn prefixed(prefix: Option<&str>, image: Option<&str>) -> Result<String, ApiError> {
    let joined = format!("{}/{}", prefix.unwrap_or(""), image.unwrap_or(""));
    image_name(Some(&joined), false)
}

/// kvmd's test for a URL given as `set_params`'s `image`:
/// `^[a-zA-Z][a-zA-Z0-9._+-]+[a-zA-Z]://[a-zA-Z0-9\[]`.
pub fn looks_like_url(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once("://") else { return false };
    let b = scheme.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphabetic()
        && b[1..b.len() - 1].iter().all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(c))
        && rest.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'[')
}

/// `valid_url` for `http`/`https` (case-insensitive `^(?:http|https)://[\[\w]+\S*`).
pub fn url(arg: Option<&str>) -> Result<String, ApiError> {
    const URL: &str = "HTTP|HTTPS URL";
    let Some(arg) = arg else { return Err(valid::none_error(URL)) };
    valid::check_raw(arg, 4096)?;
    let v = py_strip(arg);
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|p| v.get(..p.len()).filter(|head| head.eq_ignore_ascii_case(p)).map(|_| &v[p.len()..]));
    let ok = rest.is_some_and(|r| {
        r.chars().next().is_some_and(|c| c == '[' || c.is_alphanumeric() || c == '_')
            && !r.chars().any(char::is_whitespace)
    });
    if ok { Ok(v.to_owned()) } else { Err(valid::invalid_error(v, URL)) }
}

/// A download's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As stored.
    None,
    /// XZ (suffix `.xz`).
    Lzma,
    /// Zstandard (suffix `.zst`).
    Zstd,
}

impl Compression {
    /// The file name suffix of the download.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Lzma => ".xz",
            Self::Zstd => ".zst",
        }
    }
}

/// `compress`: `""`/`none`/`lzma`/`zstd`, lower-cased (default `""`).
pub fn compression(arg: Option<&str>) -> Result<Compression, ApiError> {
    let v = valid::string_in_list(Some(arg.unwrap_or("")), "Compression mode", &["", "none", "lzma", "zstd"])?;
    Ok(match v.as_str() {
        "lzma" => Compression::Lzma,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<String, ApiError>) -> String {
        r.map_or_else(|e| e.message.into_owned(), |v| format!("ok {v}"))
    }

    #[test]
    fn image_names_are_kvmds() {
        assert_eq!(msg(image_name(Some("//foo//bar.iso"), false)), "ok foo/bar.iso");
        assert_eq!(msg(image_name(Some(" тест(){}[ \t].iso\t"), false)), "ok тест(){}[ _].iso");
        assert_eq!(msg(image_name(Some("/"), false)), "The argument '/' is not a valid MSD image name");
        assert_eq!(msg(image_name(Some(""), false)), "The argument '' is not a valid MSD image name");
        assert_eq!(msg(image_name(Some("  "), true)), "ok ");
        assert_eq!(
            msg(image_name(Some("foo/.bar.iso"), false)),
            "The argument '.bar.iso' is not a valid MSD image name"
        );
        assert_eq!(msg(image_name(Some("../etc/passwd"), false)), "The argument '..' is not a valid MSD image name");
        assert_eq!(
            msg(image_name(Some("a/lost+found/b"), false)),
            "The argument 'lost+found' is not a valid MSD image name"
        );
        assert_eq!(msg(image_name(Some("a/ /b"), false)), "None argument is not a valid MSD image name");
        assert_eq!(msg(image_name(Some("a\0b.img"), false)), "ok a_b.img");
        assert_eq!(msg(image_name(None, false)), "None argument is not a valid MSD image name");
        let long = "x".repeat(300);
        assert_eq!(image_name(Some(&long), false).map(|v| v.len()).ok(), Some(255));
        assert_eq!(msg(image_name(Some(&"y".repeat(600)), false)), "RAW limit exceed");
        assert_eq!(msg(prefixed(None, None)), "The argument '/' is not a valid MSD image name");
        assert_eq!(msg(prefixed(Some("foo"), None)), "ok foo");
        assert_eq!(msg(prefixed(Some("part"), Some("x.iso"))), "ok part/x.iso");
    }

    #[test]
    fn urls_and_compression_modes_are_kvmds() {
        assert!(looks_like_url("http://h/x.iso"));
        assert!(looks_like_url("s3+x.y://[::1]/a"));
        assert!(!looks_like_url("ab://x"), "a scheme of 2 characters");
        assert!(!looks_like_url("http:/h/x.iso"));
        assert!(!looks_like_url("http:///x"));
        assert_eq!(
            msg(url(Some(" HTTPS://example.com/a b"))),
            "The argument 'HTTPS://example.com/a b' is not a valid HTTP|HTTPS URL"
        );
        assert_eq!(msg(url(Some("ftp://x"))), "The argument 'ftp://x' is not a valid HTTP|HTTPS URL");
        assert_eq!(msg(url(Some("http://[::1]:8080/x.iso"))), "ok http://[::1]:8080/x.iso");
        assert_eq!(msg(url(None)), "None argument is not a valid HTTP|HTTPS URL");
        assert_eq!(compression(None).ok(), Some(Compression::None));
        assert_eq!(compression(Some(" ZSTD ")).ok(), Some(Compression::Zstd));
        let e = compression(Some("gzip")).err().map(|e| e.message.into_owned());
        assert_eq!(e.as_deref(), Some("The argument 'gzip' is not a valid Compression mode"));
    }
}
