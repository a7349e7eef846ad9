//! The reading side of the internal state feeds between services (`/info/feed`,
//! `/streamer/feed`, `/gpio/feed`; the serving side is [`crate::service::feed_response`]):
//! NDJSON over a service socket, some of whose lines carry TAB-separated fields.

/// A feed response, line by line.
pub struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    /// The lines of `resp`'s body.
    pub fn new(resp: reqwest::Response) -> Self {
        Self { resp, buf: Vec::new() }
    }

    /// The next line, its trailing white space (the newline) cut, invalid UTF-8 replaced;
    /// `None` when the body ends or breaks off (a partial last line is dropped).
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            let chunk = self.resp.chunk().await.ok()??;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// A feed line of `N` TAB-separated fields (`/gpio/feed`'s `<event_type>\t<event>\t<full>`),
/// the last taking the rest of the line; `None` with fewer fields.
pub fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut parts = line.splitn(N, '\t');
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// The feed line of `fields`, TAB-separated, with its newline.
pub fn line(fields: &[&str]) -> String {
    let mut s = fields.join("\t");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_on_tabs_and_the_last_takes_the_rest() {
        assert_eq!(fields::<3>("atx\t{\"a\": 1}\t{\"b\":\t2}"), Some(["atx", "{\"a\": 1}", "{\"b\":\t2}"]));
        assert_eq!(fields::<3>("atx\tonly two"), None);
        assert_eq!(line(&["gpio", "{}", "{}"]), "gpio\t{}\t{}\n");
        assert_eq!(fields::<3>(line(&["gpio", "{}", "{}"]).trim_end()), Some(["gpio", "{}", "{}"]));
    }
}
