//! A TCP proxy to the local Docker socket that tests break on purpose: down (connections
//! refused and cut), hung (accepted, never answered), slow (every chunk delayed), or with its
//! long-lived streams (Docker's event stream) cut while new connections still work.

use std::sync::atomic::Ordering;
use std::time::Duration;

/// What the proxy does with connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProxyMode {
    /// Forwards to the Docker socket.
    Up = 0,
    /// Closes every connection at once, as a stopped daemon would.
    Down = 1,
    /// Accepts and never answers, as a hung daemon would.
    Hang = 2,
    /// Forwards, but holds every chunk for 300 ms, as an overloaded daemon would.
    Slow = 3,
}

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A TCP proxy to the local Docker socket that can be broken on purpose.
pub struct Proxy {
    pub port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        use std::io::ErrorKind;
        use std::sync::atomic::{AtomicBool, AtomicU8};
        use std::sync::{Arc, Mutex};

        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("cannot listen on 127.0.0.1: {e}"),
        };
        let port = match listener.local_addr() {
            Ok(a) => a.port(),
            Err(e) => panic!("no local address: {e}"),
        };
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("cannot make the proxy non-blocking: {e}");
        }
        let mode = Arc::new(AtomicU8::new(ProxyMode::Up as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (m, s, c) = (mode.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = client.set_nonblocking(false);
                let current = m.load(Ordering::SeqCst);
                if current == ProxyMode::Down as u8 {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                if let Ok(clone) = client.try_clone() {
                    c.lock().unwrap_or_else(|p| p.into_inner()).push(clone);
                }
                if current == ProxyMode::Hang as u8 {
                    continue; // kept open in `conns`, never answered
                }
                let Ok(server) = std::os::unix::net::UnixStream::connect(DOCKER_SOCKET) else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (m1, m2) = (m.clone(), m.clone());
                std::thread::spawn(move || {
                    pump(client, server, &m1);
                });
                std::thread::spawn(move || {
                    pump(server2, client2, &m2);
                });
            }
        });
        Proxy { port, mode, stop, conns }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        if mode != ProxyMode::Hang {
            // Down: break every connection; Up: drop the ones held by a hang.
            let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
            if mode == ProxyMode::Down {
                for c in conns {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            } else {
                for c in conns {
                    // Held (unanswered) connections have no pump; the others stay up.
                    drop(c);
                }
            }
        }
    }
}

impl Proxy {
    /// Cuts every connection open now (the event stream among them) and keeps forwarding new
    /// ones.
    pub fn cut_streams(&self) {
        let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for c in conns {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(ProxyMode::Down);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies bytes one way until either side closes; holds them while the proxy hangs.
fn pump(
    mut from: impl std::io::Read + ShutdownBoth,
    mut to: impl std::io::Write + ShutdownBoth,
    mode: &std::sync::atomic::AtomicU8,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while mode.load(Ordering::SeqCst) == ProxyMode::Hang as u8 {
            std::thread::sleep(Duration::from_millis(10));
        }
        if mode.load(Ordering::SeqCst) == ProxyMode::Slow as u8 {
            std::thread::sleep(Duration::from_millis(300));
        }
        if mode.load(Ordering::SeqCst) == ProxyMode::Down as u8 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    from.shutdown_both();
    to.shutdown_both();
}

trait ShutdownBoth {
    fn shutdown_both(&self);
}

impl ShutdownBoth for std::net::TcpStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl ShutdownBoth for std::os::unix::net::UnixStream {
    fn shutdown_both(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}
