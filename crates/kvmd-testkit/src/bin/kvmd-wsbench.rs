//! `kvmd-wsbench SOCKET [EVENTS]`: one WebSocket client on kvmd-hid's socket sends EVENTS
//! binary key events (the web UI's op 1) as fast as it can; prints the events per second
//! and kvmd-hid's arrival-to-write latency (`/hid/input_latency`). For `just bench-hid`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tungstenite::{Message, client::IntoClientRequest};

fn latency(socket: &str, reset: bool) -> anyhow::Result<serde_json::Value> {
    let mut s = UnixStream::connect(socket)?;
    write!(s, "GET /hid/input_latency?reset={} HTTP/1.0\r\n\r\n", u8::from(reset))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow::anyhow!("no body"))?;
    Ok(serde_json::from_slice::<serde_json::Value>(&raw[at + 4..])?["result"].clone())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let socket = args.next().ok_or_else(|| anyhow::anyhow!("usage: kvmd-wsbench SOCKET [EVENTS]"))?;
    let events: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let stream = UnixStream::connect(&socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let req = "ws://localhost/ws?stream=0".into_client_request()?;
    let (mut ws, _) = tungstenite::client(req, stream).map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
    // The state burst ends with the second `clients` after `hid`.
    loop {
        if let Message::Text(t) = ws.read()?
            && t.starts_with(r#"{"event_type": "hid""#)
        {
            break;
        }
    }
    let wait_samples = |n: usize| -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let l = latency(&socket, false)?;
            if l["samples"].as_u64().unwrap_or(0) >= n as u64 || Instant::now() > deadline {
                return Ok(l);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let key = |i: usize| Message::binary(vec![0x01, u8::from(i.is_multiple_of(2)), b'K', b'e', b'y', b'A']);
    // Throughput: everything at once, timed until every report is written.
    latency(&socket, true)?;
    let start = Instant::now();
    for i in 0..events {
        ws.send(key(i))?;
    }
    wait_samples(events)?;
    let secs = start.elapsed().as_secs_f64();
    // Latency: paced at one event per millisecond, as a fast typist or a mouse would.
    latency(&socket, true)?;
    let paced = 2000;
    for i in 0..paced {
        ws.send(key(i))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let l = wait_samples(paced)?;
    println!(
        "| WebSocket binary key events, one client, flat out | {events} in {secs:.2} s = {:.0} events/s (received, reported, written) |",
        events as f64 / secs
    );
    println!(
        "| frame arrival → report write, 1 event/ms | p50 {} µs, p99 {} µs, max {} µs ({} samples) |",
        l["p50_us"], l["p99_us"], l["max_us"], l["samples"]
    );
    Ok(())
}
