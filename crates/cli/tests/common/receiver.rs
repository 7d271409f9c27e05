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

    /// Whether each delivery, in order, carries a signature (`t=...,v1=...[,v1=...]`:
    /// two while a rotated secret still signs) made with `secret`.
    pub fn signed_by(&self, secret: &str) -> Vec<bool> {
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .map(|d| {
                let mut parts = d.signature.split(',');
                let t = parts
                    .next()
                    .and_then(|p| p.strip_prefix("t="))
                    .expect("signature header");
                parts.filter_map(|p| p.strip_prefix("v1=")).any(|v1| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
                    mac.update(format!("{t}.").as_bytes());
                    mac.update(&d.body);
                    mac.verify_slice(&hex::decode(v1).expect("hex")).is_ok()
                })
            })
            .collect()
    }

    /// Every delivery's body, in order, after checking that each is signed with
    /// `secret`.
    pub fn bodies(&self, secret: &str) -> Vec<Value> {
        let signed = self.signed_by(secret);
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .zip(signed)
            .map(|(d, signed)| {
                assert!(signed, "no signature of the secret in `{}`", d.signature);
                serde_json::from_slice(&d.body).expect("JSON body")
            })
            .collect()
    }

    /// Every event received, in order, after checking each delivery's signature.
    pub fn events(&self, secret: &str) -> Vec<Value> {
        self.bodies(secret)
            .iter()
            .flat_map(|body| body["events"].as_array().expect("events").clone())
            .collect()
    }

    /// The last delivery received: its signature header and its body as sent.
    pub fn last(&self) -> Option<(String, Vec<u8>)> {
        let seen = self.seen.lock().expect("lock");
        seen.last().map(|d| (d.signature.clone(), d.body.clone()))
    }

    /// The signature headers received, in order.
    pub fn signatures(&self) -> Vec<String> {
        let seen = self.seen.lock().expect("lock");
        seen.iter().map(|d| d.signature.clone()).collect()
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
