//! Resolver sockets inside sandbox network namespaces, served by small blocking threads.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::codec::{self, ParseError, CLASS_IN, TYPE_A};
use super::{DnsView, Lookup, RESOLVER_ADDR};

const STACK: usize = 128 * 1024;
/// TCP connections served at once per sandbox: a guest must not make the node spawn threads
/// without bound.
const MAX_TCP_CONNS: usize = 16;

struct Listener {
    udp: Arc<UdpSocket>,
    tcp: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: shutting down sockets we own; this wakes the threads blocked on them, which
        // then drop the last references (and with them the hold on the sandbox's namespace).
        unsafe {
            libc::shutdown(self.udp.as_raw_fd(), libc::SHUT_RDWR);
            libc::shutdown(self.tcp.as_raw_fd(), libc::SHUT_RDWR);
        }
    }
}

#[derive(Default)]
pub struct Resolver {
    view: Arc<RwLock<DnsView>>,
    listeners: Mutex<HashMap<String, Listener>>,
}

impl Resolver {
    pub fn set_view(&self, view: DnsView) {
        *self.view.write().unwrap() = view;
    }

    /// Starts answering inside `netns` for sandbox `sandbox_id` (no-op when already serving).
    pub fn serve(&self, sandbox_id: &str, netns: &str) -> std::io::Result<()> {
        let mut all = self.listeners.lock().unwrap();
        if all.contains_key(sandbox_id) {
            return Ok(());
        }
        let (udp, tcp) = bind_in_netns(netns)?;
        let l = Listener { udp: Arc::new(udp), tcp: Arc::new(tcp), stop: Arc::new(AtomicBool::new(false)) };
        let (view, asker, sock, stop) = (self.view.clone(), sandbox_id.to_string(), l.udp.clone(), l.stop.clone());
        std::thread::Builder::new().name(format!("dns-udp-{sandbox_id}")).stack_size(STACK).spawn(move || serve_udp(&view, &asker, &sock, &stop))?;
        let (view, asker, sock, stop) = (self.view.clone(), sandbox_id.to_string(), l.tcp.clone(), l.stop.clone());
        std::thread::Builder::new().name(format!("dns-tcp-{sandbox_id}")).stack_size(STACK).spawn(move || serve_tcp(&view, &asker, &sock, &stop))?;
        all.insert(sandbox_id.to_string(), l);
        Ok(())
    }

    pub fn stop(&self, sandbox_id: &str) {
        if let Some(l) = self.listeners.lock().unwrap().remove(sandbox_id) {
            l.shutdown();
        }
    }
}

/// Opens the resolver sockets from a thread that entered the sandbox's network namespace; the
/// sockets stay in that namespace whichever thread uses them later.
fn bind_in_netns(netns: &str) -> std::io::Result<(UdpSocket, TcpListener)> {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path)?;
        // SAFETY: valid namespace fd; only this short-lived thread switches namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let addr = SocketAddr::from((RESOLVER_ADDR, 53));
        Ok((UdpSocket::bind(addr)?, TcpListener::bind(addr)?))
    })
    .join()
    .map_err(|_| std::io::Error::other("resolver bind thread panicked"))?
}

/// The answer to one message, or None to stay silent (garbage, responses).
pub fn handle(view: &DnsView, asker: &str, msg: &[u8]) -> Option<Vec<u8>> {
    let q = match codec::parse_query(msg) {
        Ok(q) => q,
        Err(ParseError::Garbage) => return None,
        Err(ParseError::Format(id, rcode)) => return Some(codec::error_response(id, rcode)),
    };
    if q.qclass != CLASS_IN {
        return Some(codec::response(&q, codec::RCODE_REFUSED, None));
    }
    Some(match view.lookup(asker, &q.name, q.qtype == TYPE_A) {
        Lookup::Address(ip) => codec::response(&q, 0, Some(ip)),
        Lookup::NoData => codec::response(&q, 0, None),
        Lookup::NxDomain => codec::response(&q, codec::RCODE_NXDOMAIN, None),
        Lookup::Refused => codec::response(&q, codec::RCODE_REFUSED, None),
    })
}

fn serve_udp(view: &RwLock<DnsView>, asker: &str, sock: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        if n == 0 {
            continue;
        }
        let answer = handle(&view.read().unwrap(), asker, &buf[..n]);
        if let Some(a) = answer {
            let _ = sock.send_to(&a, from);
        }
    }
}

fn serve_tcp(view: &Arc<RwLock<DnsView>>, asker: &str, sock: &TcpListener, stop: &Arc<AtomicBool>) {
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let Ok((conn, _)) = sock.accept() else { continue };
        if active.load(Ordering::SeqCst) >= MAX_TCP_CONNS {
            continue; // dropping `conn` closes it
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (view, asker, stop, mine) = (view.clone(), asker.to_string(), stop.clone(), active.clone());
        let spawned = std::thread::Builder::new().stack_size(STACK).spawn(move || {
            serve_tcp_conn(&view, &asker, conn, &stop);
            mine.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// DNS over TCP: each message is preceded by its length (RFC 1035 4.2.2).
fn serve_tcp_conn(view: &RwLock<DnsView>, asker: &str, mut conn: TcpStream, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut len = [0u8; 2];
    while !stop.load(Ordering::SeqCst) && conn.read_exact(&mut len).is_ok() {
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let Some(answer) = handle(&view.read().unwrap(), asker, &msg) else { return };
        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        if conn.write_all(&framed).is_err() {
            return;
        }
    }
}
