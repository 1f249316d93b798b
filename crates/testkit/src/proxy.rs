//! A TCP proxy that can lose its upstream on command: tests put it between a node and its
//! PostgreSQL to make the database vanish (every open connection reset, new ones refused)
//! and come back, without stopping the server the other tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one upstream address.
pub struct CutProxy {
    addr: SocketAddr,
    /// `true` while cut. Each connection watches it and drops both sides when it turns true.
    cut: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, _) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = {
            let cut = cut.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let mut cut_now = cut.subscribe();
                    if *cut_now.borrow() {
                        // Refused: the peer sees the connection closed at once.
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut_now.wait_for(|cut| *cut) => {}
                        }
                        // Dropping both streams resets the connection on each side.
                    });
                }
            })
        };
        CutProxy {
            addr,
            cut,
            accepted,
            task,
        }
    }

    /// The proxy's address (give it to the client instead of the upstream's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.task.abort();
    }
}

/// `url` (a `postgres://` URL) with its host and port replaced by `addr`.
pub fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, tail) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let userinfo = authority.rsplit_once('@').map(|(user, _)| format!("{user}@"));
    format!("{scheme}://{}{addr}{tail}", userinfo.unwrap_or_default())
}

/// The host and port of a `postgres://` URL, resolved.
pub fn upstream_of(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    hostport
        .to_socket_addrs()
        .expect("resolving the database host")
        .next()
        .expect("an address for the database host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        let addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        assert_eq!(
            via("postgres://postgres@127.0.0.1:5432/test?options=x", addr),
            "postgres://postgres@127.0.0.1:6000/test?options=x"
        );
        assert_eq!(via("postgres://db.local/x", addr), "postgres://127.0.0.1:6000/x");
        assert_eq!(
            upstream_of("postgres://postgres@127.0.0.1:5432/test"),
            "127.0.0.1:5432".parse().unwrap()
        );
    }
}
