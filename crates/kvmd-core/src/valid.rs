//! Argument validators with kvmd's exact messages (`kvmd/validators/*.py`).
//!
//! Each validator takes the raw argument (`None` when it was not sent) and returns a typed
//! value or a 400 `ValidatorError`. The messages travel to clients as `error_msg`, so they
//! keep kvmd's wording and typos:
//! - missing (or, for bools and numbers, blank): `None argument is not a valid <name>`;
//! - bad: `The argument '<value>' is not a valid <name>`, the value quoted like Python's
//!   `repr()` of a string;
//! - secrets hide the value: `The argument is not a valid <name>`;
//! - too long before any parsing: `RAW limit exceed`;
//! - number ranges: `The argument '<n>' must be <name> and greater or equial than <min>`
//!   and `... lesser or equal then <max>`.

use crate::error::ApiError;

/// The message shown for an argument longer than its raw limit (sic).
pub const RAW_LIMIT_MSG: &str = "RAW limit exceed";

/// Python's `repr()` of a string: single quotes unless the value contains `'` and no `"`;
/// backslash escapes for the quote, `\\`, `\n`, `\r`, `\t` and non-printable characters.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_py_printable(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Python's `str.isprintable()`: control and format characters and
/// the non-space separators are not printable.
pub fn is_py_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u32::from(c), 0xAD | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFEFF | 0xE000..=0xF8FF)
}

/// `None argument is not a valid <name>`.
pub fn none_error(name: &str) -> ApiError {
    ApiError::validator(format!("None argument is not a valid {name}"))
}

/// `The argument '<value>' is not a valid <name>`.
pub fn invalid_error(value: &str, name: &str) -> ApiError {
    ApiError::validator(format!("The argument {} is not a valid {name}", py_repr(value)))
}

/// `The argument is not a valid <name>` (secrets).
pub fn hidden_error(name: &str) -> ApiError {
    ApiError::validator(format!("The argument is not a valid {name}"))
}

/// kvmd's raw-length check: more than `limit` characters is the raw-limit error.
pub fn check_raw(arg: &str, limit: usize) -> Result<(), ApiError> {
    if arg.chars().count() > limit { Err(ApiError::validator(RAW_LIMIT_MSG)) } else { Ok(()) }
}

/// What [`user`] accepts, as a regular expression (for the API's documentation).
pub const USER_PATTERN: &str = "^[a-z_]([a-z0-9@._-]*[a-z0-9_-])?$";

/// `valid_user`: stripped, [`USER_PATTERN`], raw limit 128.
pub fn user(arg: Option<&str>) -> Result<String, ApiError> {
    const NAME: &str = "username characters";
    let arg = arg.ok_or_else(|| none_error(NAME))?;
    check_raw(arg, 128)?;
    let v = arg.trim();
    if is_valid_user(v) { Ok(v.to_owned()) } else { Err(invalid_error(v, NAME)) }
}

/// The username rule alone, for tools that check names they write.
pub fn is_valid_user(v: &str) -> bool {
    let b = v.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    if !(first.is_ascii_lowercase() || first == b'_') {
        return false;
    }
    let Some((&last, middle)) = rest.split_last() else {
        return true;
    };
    let mid_ok = middle.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"@._-".contains(&c));
    let last_ok = last.is_ascii_lowercase() || last.is_ascii_digit() || last == b'_' || last == b'-';
    mid_ok && last_ok
}

/// `valid_passwd`: not stripped, printable ASCII only, may be empty, raw limit 512;
/// the value is hidden in the message.
pub fn passwd(arg: Option<&str>) -> Result<String, ApiError> {
    const NAME: &str = "passwd characters";
    let arg = arg.ok_or_else(|| none_error(NAME))?;
    check_raw(arg, 512)?;
    if arg.bytes().all(|c| (0x20..=0x7e).contains(&c)) { Ok(arg.to_owned()) } else { Err(hidden_error(NAME)) }
}

/// `valid_auth_token`: stripped, 64 lower-case hex digits, raw limit 128; hidden.
pub fn auth_token(arg: Option<&str>) -> Result<String, ApiError> {
    const NAME: &str = "auth token";
    let arg = arg.ok_or_else(|| none_error(NAME))?;
    check_raw(arg, 128)?;
    let v = arg.trim();
    if v.len() == 64 && v.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        Ok(v.to_owned())
    } else {
        Err(hidden_error(NAME))
    }
}

/// `valid_bool`: stripped and lower-cased; `1/true/yes` or `0/false/no`; raw limit 16.
pub fn boolean(arg: Option<&str>) -> Result<bool, ApiError> {
    const NAME: &str = "bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])";
    let arg = arg.ok_or_else(|| none_error(NAME))?;
    check_raw(arg, 16)?;
    let v = arg.trim();
    if v.is_empty() {
        return Err(none_error(NAME));
    }
    match v.to_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(invalid_error(v, NAME)),
    }
}

/// Python `int()` syntax (sign, `_` between digits) plus kvmd's `0x` prefix.
fn parse_py_int(v: &str) -> Option<i128> {
    let (neg, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        _ => (10, digits),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Python rejects leading zeros in non-zero decimal literals only for int literals, not
    // for int("007"), which is 7: nothing to check here.
    let n = i128::from_str_radix(&clean, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// `valid_number` for integers: the argument parsed as an int, then checked against
/// `min`/`max`, with `name` in the messages; raw limit 16.
pub fn int(arg: Option<&str>, name: &str, min: Option<i64>, max: Option<i64>) -> Result<i64, ApiError> {
    let arg = arg.ok_or_else(|| none_error(name))?;
    check_raw(arg, 16)?;
    let v = arg.trim();
    if v.is_empty() {
        return Err(none_error(name));
    }
    let n = parse_py_int(v).ok_or_else(|| invalid_error(v, name))?;
    if let Some(min) = min
        && n < i128::from(min)
    {
        return Err(ApiError::validator(format!("The argument '{n}' must be {name} and greater or equial than {min}")));
    }
    if let Some(max) = max
        && n > i128::from(max)
    {
        return Err(ApiError::validator(format!("The argument '{n}' must be {name} and lesser or equal then {max}")));
    }
    i64::try_from(n).map_err(|_| invalid_error(v, name))
}

/// `valid_number` for floats: Python `float()` syntax (`1e3`), then checked against
/// `min`/`max` with kvmd's range messages; raw limit 16. NaN and infinities are refused (an
/// infinity outside a bound with kvmd's range message).
pub fn float(arg: Option<&str>, name: &str, min: Option<f64>, max: Option<f64>) -> Result<f64, ApiError> {
    let arg = arg.ok_or_else(|| none_error(name))?;
    check_raw(arg, 16)?;
    let v = arg.trim();
    if v.is_empty() {
        return Err(none_error(name));
    }
    let lower = v.to_ascii_lowercase().replace('_', "");
    let n: f64 = match lower.trim_start_matches(['+', '-']) {
        "infinity" | "inf" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => lower.parse().map_err(|_| invalid_error(v, name))?,
    };
    let repr = crate::json::python_float_repr;
    if let Some(min) = min
        && n < min
    {
        return Err(ApiError::validator(format!(
            "The argument '{}' must be {name} and greater or equial than {}",
            repr(n),
            repr(min)
        )));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(ApiError::validator(format!(
            "The argument '{}' must be {name} and lesser or equal then {}",
            repr(n),
            repr(max)
        )));
    }
    // Python's float() takes `nan` and `inf`, and kvmd's range checks let NaN (and an
    // unbounded infinity) through, to fail later as a duration: refused here.
    if !n.is_finite() {
        return Err(invalid_error(v, name));
    }
    Ok(n)
}

/// `check_string_in_list`: stripped, lower-cased, then one of `variants`.
pub fn string_in_list(arg: Option<&str>, name: &str, variants: &[&str]) -> Result<String, ApiError> {
    let arg = arg.ok_or_else(|| none_error(name))?;
    let v = arg.trim().to_lowercase();
    if variants.contains(&v.as_str()) { Ok(v) } else { Err(invalid_error(&v, name)) }
}

/// `valid_string_list`: split on `[,\t ]+`, empty items dropped, `item` applied to each;
/// one failing item fails the list with kvmd's sub-validator message.
pub fn string_list<T>(arg: Option<&str>, item: impl Fn(&str) -> Result<T, ApiError>) -> Result<Vec<T>, ApiError> {
    let arg = arg.ok_or_else(|| none_error("string list"))?;
    check_raw(arg, 4096)?;
    let items: Vec<&str> = arg.split([',', '\t', ' ']).filter(|s| !s.is_empty()).collect();
    let mut out = Vec::with_capacity(items.len());
    for it in &items {
        match item(it) {
            Ok(v) => out.push(v),
            Err(_) => {
                let list: Vec<String> = items.iter().map(|s| py_repr(s)).collect();
                return Err(ApiError::validator(format!(
                    "Failed sub-validator on one of the item of [{}]",
                    list.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        r.err().map(|e| e.message.into_owned()).unwrap_or_default()
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_repr("a\nb\\"), "'a\\nb\\\\'");
        assert_eq!(py_repr("\u{1}\u{7f}\u{a0}é"), "'\\x01\\x7f\\xa0é'");
    }

    #[test]
    fn user_cases() {
        for ok in ["admin", "_x", "a", "user@example.com", "a-b_c.d1", " admin "] {
            assert!(user(Some(ok)).is_ok(), "{ok}");
        }
        for bad in ["", "Admin", "1abc", "a.", "a@", "a b", "адм"] {
            assert!(user(Some(bad)).is_err(), "{bad}");
        }
        // tests/golden/kvmd-4.197/direct/auth_login_bad_username.http and auth_login_no_fields.http
        assert_eq!(msg(user(Some("Admin!"))), "The argument 'Admin!' is not a valid username characters");
        assert_eq!(msg(user(Some(""))), "The argument '' is not a valid username characters");
        assert_eq!(msg(user(None)), "None argument is not a valid username characters");
        assert_eq!(msg(user(Some(&"a".repeat(129)))), RAW_LIMIT_MSG);
    }

    #[test]
    fn passwd_cases() {
        for ok in ["", " spaced ", "p@ss:w0rd~"] {
            assert_eq!(passwd(Some(ok)).ok().as_deref(), Some(ok));
        }
        assert_eq!(msg(passwd(Some("é"))), "The argument is not a valid passwd characters");
        assert_eq!(msg(passwd(Some("a\tb"))), "The argument is not a valid passwd characters");
    }

    #[test]
    fn token_cases() {
        let good = "0123456789abcdef".repeat(4);
        assert!(auth_token(Some(&good)).is_ok());
        assert!(auth_token(Some(&format!(" {good} "))).is_ok());
        // tests/golden/kvmd-4.197/direct/auth_check_malformed_token.http
        assert_eq!(msg(auth_token(Some("xyz"))), "The argument is not a valid auth token");
        assert!(auth_token(Some(&good.to_uppercase())).is_err());
    }

    #[test]
    fn bool_cases() {
        for (s, v) in [("1", true), ("TRUE", true), (" yes ", true), ("0", false), ("False", false), ("no", false)] {
            assert_eq!(boolean(Some(s)).ok(), Some(v), "{s}");
        }
        assert_eq!(
            msg(boolean(Some("maybe"))),
            "The argument 'maybe' is not a valid bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])"
        );
        assert_eq!(
            msg(boolean(Some("  "))),
            "None argument is not a valid bool (['1', 'true', 'yes'] or ['0', 'false', 'no'])"
        );
    }

    #[test]
    fn int_cases() {
        let f0 = |s| int(Some(s), "log seek", Some(0), None);
        assert_eq!(f0("5").ok(), Some(5));
        assert_eq!(f0(" 1_000 ").ok(), Some(1000));
        assert_eq!(f0("0x10").ok(), Some(16));
        assert_eq!(f0("+3").ok(), Some(3));
        // tests/golden/kvmd-4.197/direct/log_bad_seek.http
        assert_eq!(msg(f0("-1")), "The argument '-1' must be log seek and greater or equial than 0");
        assert_eq!(msg(f0("abc")), "The argument 'abc' is not a valid log seek");
        assert_eq!(msg(f0("1__0")), "The argument '1__0' is not a valid log seek");
        assert_eq!(msg(f0("")), "None argument is not a valid log seek");
        assert_eq!(msg(int(Some("9"), "x", None, Some(8))), "The argument '9' must be x and lesser or equal then 8");
        assert_eq!(msg(f0("12345678901234567")), RAW_LIMIT_MSG);
    }

    #[test]
    fn float_cases() {
        let d = |s| float(Some(s), "keys delay", Some(0.0), Some(5.0));
        assert_eq!(d("0.5").ok(), Some(0.5));
        assert_eq!(d(" 1e0 ").ok(), Some(1.0));
        assert_eq!(msg(d("6")), "The argument '6.0' must be keys delay and lesser or equal then 5.0");
        assert_eq!(msg(d("-1")), "The argument '-1.0' must be keys delay and greater or equial than 0.0");
        assert_eq!(msg(d("x")), "The argument 'x' is not a valid keys delay");
        assert!(d("inf").is_err());
        // NaN passes every range check in Python; it is refused here (it panicked as a
        // Duration in /hid/print?delay=nan).
        for bad in ["nan", "NaN", "-nan", "+nan"] {
            assert_eq!(msg(d(bad)), format!("The argument '{bad}' is not a valid keys delay"));
        }
        let unbounded = |s| float(Some(s), "x", None, None);
        assert!(unbounded("inf").is_err() && unbounded("-infinity").is_err() && unbounded("1e308").is_ok());
    }

    #[test]
    fn list_cases() {
        let fields = |s| string_list(Some(s), |i| string_in_list(Some(i), "info field", &["meta", "system"]));
        assert_eq!(fields("meta, system").ok(), Some(vec!["meta".to_owned(), "system".to_owned()]));
        assert_eq!(fields(",,meta\t").ok(), Some(vec!["meta".to_owned()]));
        // tests/golden/kvmd-4.197/direct/info_fields_bad.http
        assert_eq!(msg(fields("nosuch")), "Failed sub-validator on one of the item of ['nosuch']");
    }

    #[test]
    fn redirect_choice() {
        let r = |s| string_in_list(Some(s), "login redirect", &["", "/", "/kvm", "/kvm/"]);
        assert_eq!(r(" /KVM ").ok().as_deref(), Some("/kvm"));
        // tests/golden/kvmd-4.197/direct/auth_login_bad_redirect.http
        assert_eq!(msg(r("http://evil/")), "The argument 'http://evil/' is not a valid login redirect");
    }

    proptest::proptest! {
        #[test]
        fn validators_never_panic(s in ".{0,600}") {
            let _ = user(Some(&s));
            let _ = passwd(Some(&s));
            let _ = auth_token(Some(&s));
            let _ = boolean(Some(&s));
            let _ = int(Some(&s), "n", Some(0), Some(10));
            let _ = int(Some(&s), "n", None, None);
            if let Ok(f) = float(Some(&s), "f", None, None) {
                proptest::prop_assert!(f.is_finite());
                let _ = std::time::Duration::try_from_secs_f64(f.abs());
            }
            let _ = string_list(Some(&s), |i| user(Some(i)));
            let _ = py_repr(&s);
        }
    }
}
