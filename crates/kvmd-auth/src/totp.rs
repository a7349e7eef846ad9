//! TOTP two-factor codes, as kvmd uses them (spec `auth.md` section 7).
//!
//! The secret file holds a base32 secret; empty means 2FA is off. When it is on, the last
//! six characters of every password are the code (RFC 6238, SHA-1, 6 digits, 30 s, ±1
//! step) and the rest is the real password. pyotp (and so PiKVM) accepts lower-case and
//! padded base32 and kvmd strips the file; totp-rs accepts neither, so we normalise first.

use totp_rs::{Builder, Secret, Totp};

/// The step length in seconds.
pub const STEP: u64 = 30;

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid TOTP secret: {0}")]
pub struct SecretError(String);

/// Parses the secret file's text; `Ok(None)` when it is empty (2FA off).
pub fn parse_secret(text: &str) -> Result<Option<Totp>, SecretError> {
    let b32: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let b32 = b32.trim_end_matches('=');
    if b32.is_empty() {
        return Ok(None);
    }
    let secret = Secret::try_from_base32(b32).map_err(|e| SecretError(format!("{e:?}")))?;
    let builder = Builder::new().with_secret(secret);
    // kvmd takes any secret; totp-rs refuses ones under 128 bits unless told otherwise.
    match builder.clone().build() {
        Ok(t) => Ok(Some(t)),
        Err(_) => Ok(Some(builder.build_noncompliant())),
    }
}

/// A new random secret as kvmd-totp writes it: 20 bytes, 32 base32 characters.
pub fn generate_secret() -> String {
    let mut b = [0u8; 20];
    if getrandom::fill(&mut b).is_err() {
        panic!("the operating system gave no random bytes");
    }
    Secret::from(b).to_base32()
}

/// Splits `passwd` into (password, code) and checks the code at unix time `now`.
/// Returns the real password and the matched step, or `None` when the code is missing or
/// wrong.
pub fn check<'a>(totp: &Totp, passwd: &'a str, now: u64) -> Option<(&'a str, u64)> {
    let split = passwd.len().checked_sub(6)?;
    let (pw, code) = (passwd.get(..split)?, passwd.get(split..)?);
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(code, now).map(|step| (pw, step))
}

/// The current code, for tools and tests.
pub fn code_at(totp: &Totp, now: u64) -> String {
    totp.generate(now).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // tests/golden/kvmd-4.197/README.md: this secret gives 137892 for the step starting at
    // 2026-11-22 12:57:30 UTC (unix 1795352250).
    const GOLDEN_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const GOLDEN_TIME: u64 = 1_795_352_250;

    fn golden() -> Totp {
        parse_secret(GOLDEN_SECRET).ok().flatten().unwrap_or_else(|| panic!("golden secret"))
    }

    #[test]
    fn golden_code() {
        assert_eq!(code_at(&golden(), GOLDEN_TIME), "137892");
        assert_eq!(check(&golden(), "admin137892", GOLDEN_TIME + 29), Some(("admin", GOLDEN_TIME / STEP)));
        // ±1 step.
        assert!(check(&golden(), "admin137892", GOLDEN_TIME - 30).is_some());
        assert!(check(&golden(), "admin137892", GOLDEN_TIME + 59).is_some());
        assert!(check(&golden(), "admin137892", GOLDEN_TIME + 60).is_none());
        assert!(check(&golden(), "admin137892", GOLDEN_TIME - 31).is_none());
        // Missing or wrong code (totp_check_xhdr_without_code, totp_check_xhdr_wrong_code).
        assert!(check(&golden(), "admin", GOLDEN_TIME).is_none());
        assert!(check(&golden(), "admin000000", GOLDEN_TIME).is_none());
        assert!(check(&golden(), "", GOLDEN_TIME).is_none());
    }

    #[test]
    fn secrets_are_normalised_like_pyotp() {
        let lower = format!("  {}==\n", GOLDEN_SECRET.to_lowercase());
        let t = parse_secret(&lower).ok().flatten().unwrap_or_else(|| panic!("lower-case secret"));
        assert_eq!(code_at(&t, GOLDEN_TIME), "137892");
        assert!(parse_secret("").ok().is_some_and(|t| t.is_none()));
        assert!(parse_secret(" \n").ok().is_some_and(|t| t.is_none()));
        assert!(parse_secret("not base32!").is_err());
        // Short secrets are accepted, as by kvmd.
        assert!(parse_secret("JBSWY3DPEHPK3PXP").ok().flatten().is_some());
    }

    #[test]
    fn generated_secret_is_kvmds_shape() {
        let s = generate_secret();
        assert_eq!(s.len(), 32);
        assert!(s.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        assert!(parse_secret(&s).ok().flatten().is_some());
    }
}
