//! Password hashes of htpasswd entries: identification, verification and creation.
//!
//! kvmd accepts (passlib, first match wins): `{SSHA512}`, `{SSHA256}`, `$5$`, `$6$`,
//! `$apr1$`, 13-character DES crypt, `{SHA}`, and anything else as plaintext (spec
//! `auth.md` section 8). kvmd-rs accepts the same and **also bcrypt** (`$2a$`, `$2b$`,
//! `$2x$`, `$2y$`), which kvmd rejects and which is our default for new entries.
//!
//! Implementations: RustCrypto's `sha1`/`sha2`/`md-5` for the LDAP and Apache forms
//! (`$apr1$` is md5-crypt with its own magic, which no maintained crate implements, so
//! its 40 lines are here); the `bcrypt` crate; and for the crypt(3) family (`$5$`, `$6$`,
//! DES) the system's libxcrypt, the reference implementation of crypt(3) on Debian —
//! no maintained Rust crate implements traditional DES crypt. Every comparison is
//! constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The scheme of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `{SSHA512}` (kvmd's default).
    Ssha512,
    /// `{SSHA256}`.
    Ssha256,
    /// `$5$` sha256-crypt.
    Sha256Crypt,
    /// `$6$` sha512-crypt.
    Sha512Crypt,
    /// `$apr1$` Apache md5-crypt.
    Apr1,
    /// bcrypt (kvmd-rs only).
    Bcrypt,
    /// 13-character traditional DES crypt.
    DesCrypt,
    /// `{SHA}` unsalted SHA-1.
    Sha1,
    /// Anything else: compared literally.
    Plain,
}

impl Scheme {
    /// Whether verifying costs enough to run off the request thread.
    pub fn is_slow(self) -> bool {
        matches!(self, Scheme::Bcrypt | Scheme::Sha256Crypt | Scheme::Sha512Crypt)
    }
}

/// Identifies `hash` in passlib's order (bcrypt before DES, which cannot collide).
pub fn identify(hash: &str) -> Scheme {
    if hash.starts_with("{SSHA512}") {
        Scheme::Ssha512
    } else if hash.starts_with("{SSHA256}") {
        Scheme::Ssha256
    } else if hash.starts_with("$5$") {
        Scheme::Sha256Crypt
    } else if hash.starts_with("$6$") {
        Scheme::Sha512Crypt
    } else if hash.starts_with("$apr1$") {
        Scheme::Apr1
    } else if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Scheme::Bcrypt
    } else if hash.len() == 13 && hash.bytes().all(is_crypt64) {
        Scheme::DesCrypt
    } else if hash.starts_with("{SHA}") {
        Scheme::Sha1
    } else {
        Scheme::Plain
    }
}

fn is_crypt64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'/'
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether `passwd` matches `hash`. Malformed hashes never match.
pub fn verify(hash: &str, passwd: &str) -> bool {
    match identify(hash) {
        Scheme::Ssha512 => verify_ssha::<Sha512>(&hash[9..], passwd, 64),
        Scheme::Ssha256 => verify_ssha::<Sha256>(&hash[9..], passwd, 32),
        Scheme::Sha1 => B64.decode(&hash[5..]).is_ok_and(|d| ct_eq(&d, &Sha1::digest(passwd.as_bytes()))),
        Scheme::Apr1 => apr1_from_setting(hash, passwd).is_some_and(|h| ct_eq(h.as_bytes(), hash.as_bytes())),
        Scheme::Bcrypt => bcrypt::verify(passwd, hash).unwrap_or(false),
        Scheme::Sha256Crypt | Scheme::Sha512Crypt | Scheme::DesCrypt => {
            libcrypt::crypt(passwd, hash).is_some_and(|h| ct_eq(h.as_bytes(), hash.as_bytes()))
        }
        Scheme::Plain => ct_eq(hash.as_bytes(), passwd.as_bytes()),
    }
}

fn verify_ssha<D: Digest>(b64: &str, passwd: &str, digest_len: usize) -> bool {
    let Ok(raw) = B64.decode(b64) else {
        return false;
    };
    // passlib accepts 4..=16 salt bytes after the digest.
    if raw.len() < digest_len + 4 || raw.len() > digest_len + 16 {
        return false;
    }
    let (digest, salt) = raw.split_at(digest_len);
    let mut h = D::new();
    h.update(passwd.as_bytes());
    h.update(salt);
    ct_eq(&h.finalize(), digest)
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all.
    if getrandom::fill(&mut b).is_err() {
        panic!("the operating system gave no random bytes");
    }
    b
}

/// A new `{SSHA512}` entry (8-byte salt), the form kvmd writes.
pub fn make_ssha512(passwd: &str) -> String {
    let salt: [u8; 8] = random_bytes();
    let mut h = Sha512::new();
    h.update(passwd.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{SSHA512}}{}", B64.encode(raw))
}

/// A new bcrypt (`$2b$`) entry.
pub fn make_bcrypt(passwd: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(passwd, cost)
}

const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `$apr1$<salt>$<hash>` for the salt in `setting` (md5-crypt with the `$apr1$` magic).
fn apr1_from_setting(setting: &str, passwd: &str) -> Option<String> {
    let rest = setting.strip_prefix("$apr1$")?;
    let salt = rest.split('$').next()?;
    let end = salt.char_indices().nth(8).map_or(salt.len(), |(i, _)| i);
    let salt = &salt[..end];
    Some(apr1(passwd.as_bytes(), salt))
}

fn apr1(pw: &[u8], salt: &str) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let s = salt.as_bytes();
    let alt = Md5::new().chain_update(pw).chain_update(s).chain_update(pw).finalize();
    let mut ctx = Md5::new().chain_update(pw).chain_update(MAGIC).chain_update(s);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(s);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = format!("$apr1${salt}$");
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(CRYPT64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    put(f(11), 2);
    out
}

/// crypt(3) through libxcrypt (`crypt_rn`, thread-safe with its own work area).
#[allow(unsafe_code)]
mod libcrypt {
    use std::ffi::{CStr, CString, c_char, c_int, c_void};

    #[link(name = "crypt")]
    unsafe extern "C" {
        fn crypt_rn(phrase: *const c_char, setting: *const c_char, data: *mut c_void, size: c_int) -> *mut c_char;
    }

    /// libxcrypt's `struct crypt_data` is 32768 bytes; `crypt_rn` checks the size we pass.
    const DATA_SIZE: usize = 32768;

    /// The crypt(3) hash of `phrase` with `setting`, or `None` if libxcrypt refuses it.
    pub(super) fn crypt(phrase: &str, setting: &str) -> Option<String> {
        let phrase = CString::new(phrase).ok()?;
        let setting = CString::new(setting).ok()?;
        let mut data = vec![0u8; DATA_SIZE];
        // SAFETY: both strings are NUL-terminated and outlive the call; `data` is a
        // writable, zeroed buffer of exactly the size we pass; the result points into
        // `data`, which is still alive while we copy it out.
        let out = unsafe {
            let p = crypt_rn(phrase.as_ptr(), setting.as_ptr(), data.as_mut_ptr().cast(), DATA_SIZE as c_int);
            if p.is_null() {
                return None;
            }
            CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        // libxcrypt signals failure with a hash starting with '*'.
        (!out.starts_with('*')).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // admin:admin in kvmd's {SSHA512} form (64-byte digest + 8-byte salt 01..08), made with
    // python3: base64(sha512(b"admin" + salt).digest() + salt).
    const KVMD_ADMIN: &str =
        "{SSHA512}Wip+Dyp3pFuZ5FNwiyFmDCly+mCQVsO66YFMSr1BRomPIHdqrdlKwEP0i6AESR/KAi/KMhQFZ76aG0Ca5q6algECAwQFBgcI";
    const SSHA256_ADMIN: &str = "{SSHA256}9lAOFJKchmXNHXjzFPVzjmklsEu2MQqA8zDHk9serLIBAgMEBQYHCA==";

    #[test]
    fn identification_order() {
        assert_eq!(identify(KVMD_ADMIN), Scheme::Ssha512);
        assert_eq!(identify("$2y$05$abcdefghijklmnopqrstuu"), Scheme::Bcrypt);
        assert_eq!(identify("abOV.DfJmdnYw"), Scheme::DesCrypt);
        assert_eq!(identify("plainpasswd13"), Scheme::DesCrypt, "13 crypt64 chars are DES, as in passlib");
        assert_eq!(identify("$1$abc$def"), Scheme::Plain);
        assert_eq!(identify("admin"), Scheme::Plain);
    }

    #[test]
    fn generated_entries_verify() {
        let s = make_ssha512("admin");
        assert!(verify(&s, "admin"));
        assert!(!verify(&s, "admin1"));
        let b = make_bcrypt("admin", 4).unwrap_or_default();
        assert!(b.starts_with("$2b$04$"));
        assert!(verify(&b, "admin"));
        assert!(!verify(&b, "nimda"));
    }

    // Vectors made with `openssl passwd` and Python's crypt module (libxcrypt):
    //   openssl passwd -apr1 -salt r31..... myPassword
    //   openssl passwd -5 -salt saltsalt admin ; openssl passwd -6 -salt saltsalt admin
    //   python3 -c "import crypt; print(crypt.crypt('admin', 'ab'))"
    //   printf admin | openssl dgst -sha1 -binary | base64
    #[test]
    fn known_vectors() {
        assert!(verify(KVMD_ADMIN, "admin"));
        assert!(!verify(KVMD_ADMIN, "Admin"));
        assert!(verify(SSHA256_ADMIN, "admin"));
        assert!(!verify(SSHA256_ADMIN, "admin\0"));
        assert!(verify("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "myPassword"));
        let sha512crypt =
            "$6$saltsalt$ZxoUf1bJzACFdk9GZkBGmxXd3Rq8nUoGjgon4GVoI91SlW41Ew2djlh60PmWr4flwags.7ULrKVSSmnCEsIOj1";
        assert!(verify(sha512crypt, "admin"));
        assert!(!verify(sha512crypt, "admi"));
        assert!(!verify("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "mypassword"));
        assert!(verify("$5$saltsalt$ajilCybiF3oQBEfeTHO1rkbsmz9HcJplt.gHWXkRfD4", "admin"));
        assert!(!verify("$5$saltsalt$ajilCybiF3oQBEfeTHO1rkbsmz9HcJplt.gHWXkRfD4", "admin2"));
        assert!(verify("abOV.DfJmdnYw", "admin"));
        assert!(!verify("abOV.DfJmdnYw", "admix"));
        assert!(verify("{SHA}0DPiKuNIrrVmD8IUCuw1hQxNqZc=", "admin"));
        assert!(verify("admin", "admin"));
        assert!(!verify("admin", "admin "));
        // bcrypt and md5-crypt lines are plaintext to kvmd; bcrypt is ours.
        assert!(!verify("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "admin"));
    }

    #[test]
    fn malformed_hashes_never_match() {
        for h in ["{SSHA512}", "{SSHA512}!!!", "{SSHA256}YWJj", "$5$", "$6$x", "$apr1$", "$2b$99$x", "{SHA}zz"] {
            assert!(!verify(h, ""), "{h}");
            assert!(!verify(h, "admin"), "{h}");
        }
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(h in ".{0,80}", p in ".{0,40}") {
            let _ = verify(&h, &p);
            let _ = verify(&format!("{{SSHA512}}{h}"), &p);
            let _ = verify(&format!("$apr1${h}"), &p);
            let _ = verify(&format!("$6${h}"), &p);
        }
    }
}
