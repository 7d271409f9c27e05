//! A webhook receiver on loopback, for the tests of delivery.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What the receiver saw of one delivery.
struct Delivery {
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver on loopback that answers 500 to the first `failures` requests
/// and to every request while `down` is set.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
    pub requests: Arc<AtomicUsize>,
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub fn start(failures: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hooks/cohort",
            listener.local_addr().expect("addr")
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, n, d) = (seen.clone(), requests.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut signature = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("cohort-signature:") {
                        signature = line["cohort-signature:".len()..].trim().to_string();
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let count = n.fetch_add(1, Ordering::SeqCst);
                let ok = count >= failures && !d.load(Ordering::SeqCst);
                if ok {
                    s.lock().expect("lock").push(Delivery { signature, body });
                }
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            url,
            seen,
            requests,
            down,
        }
    }

    /// Every event received, in order, after checking each delivery's signature.
    pub fn events(&self, secret: &str) -> Vec<Value> {
        let seen = self.seen.lock().expect("lock");
        let mut events = Vec::new();
        for d in seen.iter() {
            let (t, v1) = d
                .signature
                .strip_prefix("t=")
                .and_then(|s| s.split_once(",v1="))
                .expect("signature header");
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
            mac.update(format!("{t}.").as_bytes());
            mac.update(&d.body);
            mac.verify_slice(&hex::decode(v1).expect("hex"))
                .expect("the signature matches the body");
            let body: Value = serde_json::from_slice(&d.body).expect("JSON body");
            events.extend(body["events"].as_array().expect("events").iter().cloned());
        }
        events
    }

    pub fn wait_for(&self, secret: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.events(secret);
            if events.len() >= count || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
