//! A fault-injecting HTTP proxy on 127.0.0.1 (one request per connection)
//! in front of a registry: 503 answers and connections dropped mid-body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the proxy does to matching requests.
#[derive(Clone)]
pub(crate) enum Fault {
    /// Answer `503` with `Retry-After: 1`, `times` times.
    Unavailable { path: &'static str, times: usize },
    /// Forward the first `after` bytes of the response, then drop the
    /// connection, `times` times.
    Drop {
        path: &'static str,
        after: usize,
        times: usize,
    },
}

/// An HTTP proxy on 127.0.0.1 in front of `upstream`, one request per
/// connection, injecting faults.
pub(crate) struct Proxy {
    /// Port it listens on.
    pub(crate) port: u16,
    /// How many faults were injected.
    pub(crate) injected: Arc<AtomicUsize>,
    /// Request paths, in arrival order.
    pub(crate) requests: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// Starts the proxy.
    pub(crate) fn start(upstream: u16, faults: Vec<Fault>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counters: Arc<Vec<AtomicUsize>> =
            Arc::new(faults.iter().map(|_| AtomicUsize::new(0)).collect());
        let faults = Arc::new(faults);
        {
            let (injected, stop, requests) = (injected.clone(), stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (faults, counters, injected, requests) = (
                        faults.clone(),
                        counters.clone(),
                        injected.clone(),
                        requests.clone(),
                    );
                    std::thread::spawn(move || {
                        let _ = serve_one(conn, upstream, &faults, &counters, &injected, &requests);
                    });
                }
            });
        }
        Self {
            port,
            injected,
            requests,
            stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_one(
    client: TcpStream,
    upstream: u16,
    faults: &[Fault],
    counters: &[AtomicUsize],
    injected: &AtomicUsize,
    requests: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line);
    }
    let path = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_owned();
    if let Ok(mut r) = requests.lock() {
        r.push(path.clone());
    }
    let mut client = client;
    let mut drop_after = None;
    for (f, n) in faults.iter().zip(counters) {
        let (p, times) = match f {
            Fault::Unavailable { path, times } | Fault::Drop { path, times, .. } => (path, times),
        };
        if !path.contains(p) || n.fetch_add(1, Ordering::SeqCst) >= *times {
            continue;
        }
        injected.fetch_add(1, Ordering::SeqCst);
        match f {
            Fault::Unavailable { .. } => {
                client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nunavailable",
                )?;
                client.shutdown(Shutdown::Both)?;
                return Ok(());
            }
            Fault::Drop { after, .. } => drop_after = Some(*after),
        }
        break;
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut req = String::new();
    for l in &head {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            req.push_str(l);
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let n = match drop_after {
            Some(limit) if sent + n >= limit => {
                client.write_all(&buf[..limit - sent])?;
                // An abortive close: the client sees a reset mid-body.
                client.shutdown(Shutdown::Both)?;
                return Ok(());
            }
            _ => n,
        };
        client.write_all(&buf[..n])?;
        sent += n;
    }
    client.shutdown(Shutdown::Both)?;
    Ok(())
}
