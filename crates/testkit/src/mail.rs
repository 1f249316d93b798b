//! Real mail servers for tests (issue 16): pymap (an in-memory IMAP server with IDLE) and
//! aiosmtpd (SMTP), both from PyPI at pinned versions in the shared test virtual environment
//! (`.ci/run` installs the same). Each runs as a child process on a free loopback port and is
//! killed when its handle drops.
//!
//! The SMTP server writes every message it accepts to `<dir>/<n>.eml` *before* answering;
//! while `<dir>/hold` exists it then waits before answering `250`, so a test can kill a node
//! after the server took a mail and before the node heard it was accepted.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// pymap version the tests run.
pub const PYMAP_VERSION: &str = "0.36.7";
/// aiosmtpd version the tests run.
pub const AIOSMTPD_VERSION: &str = "1.4.6";

/// Radicale version the CalDAV tests run (a real CalDAV server).
pub const RADICALE_VERSION: &str = "3.9.0";

/// pymap's demo account (the dict backend's only user).
pub const IMAP_USER: &str = "demouser";
/// Its password.
pub const IMAP_PASSWORD: &str = "demopass";

fn venv() -> PathBuf {
    crate::python::ensure_installed(&[("pymap", PYMAP_VERSION), ("aiosmtpd", AIOSMTPD_VERSION)])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening ({status})");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running pymap.
pub struct ImapServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl ImapServer {
    /// Starts pymap's in-memory backend with its demo account.
    pub fn start() -> ImapServer {
        let venv = venv();
        let port = free_port();
        let mut child = Command::new(venv.join("bin/pymap"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "dict",
                "--demo-data",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pymap");
        wait_for_port(port, &mut child, "pymap");
        ImapServer { child, port }
    }

    /// `imap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("imap://127.0.0.1:{}", self.port)
    }

    /// Appends `raw` to the demo account's INBOX (through Python's imaplib); returns its UID.
    pub fn append(&self, raw: &[u8]) -> u64 {
        let script = "import imaplib, sys, re\n\
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
m.login(sys.argv[2], sys.argv[3])\n\
typ, data = m.append('INBOX', None, None, sys.stdin.buffer.read())\n\
assert typ == 'OK', data\n\
print(re.search(rb'APPENDUID \\d+ (\\d+)', data[0]).group(1).decode())\n";
        let mut child = Command::new(venv().join("bin/python"))
            .args(["-c", script, &self.port.to_string(), IMAP_USER, IMAP_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run imaplib");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(raw)
            .expect("write the message");
        let output = child.wait_with_output().expect("imaplib finished");
        assert!(
            output.status.success(),
            "IMAP APPEND failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("APPENDUID")
    }
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SMTP_SCRIPT: &str = r#"
import asyncio, os, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, folder = int(sys.argv[1]), sys.argv[2]

class Keep:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(folder) if f.endswith('.eml')]) + 1
        tmp = os.path.join(folder, f'{n}.tmp')
        with open(tmp, 'wb') as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(folder, f'{n}.eml'))
        while os.path.exists(os.path.join(folder, 'hold')):
            await asyncio.sleep(0.05)
        return '250 Message accepted for delivery'

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b'demouser' and auth_data.password == b'demopass'
    # handled=False: aiosmtpd answers a failed login with 535 (handled=True would answer nothing).
    return AuthResult(success=ok, handled=False)

controller = Controller(Keep(), hostname='127.0.0.1', port=port, authenticator=authenticator, auth_require_tls=False)
controller.start()
try:
    while True:
        time.sleep(3600)
finally:
    controller.stop()
"#;

/// A running aiosmtpd that keeps what it accepts.
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts it.
    pub fn start() -> SmtpServer {
        let venv = venv();
        let port = free_port();
        let dir = tempfile::tempdir().expect("SMTP spool dir");
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", SMTP_SCRIPT, &port.to_string(), &dir.path().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        wait_for_port(port, &mut child, "aiosmtpd");
        SmtpServer { child, port, dir }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The spool folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut n = 1;
        let mut out = Vec::new();
        while let Ok(bytes) = std::fs::read(self.dir.path().join(format!("{n}.eml"))) {
            out.push(bytes);
            n += 1;
        }
        out
    }

    /// From now on, each message is stored and then its `250` withheld until [`Self::release`].
    pub fn hold(&self) {
        std::fs::write(self.dir.path().join("hold"), b"").expect("hold file");
    }

    /// Answers withheld messages.
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("hold"));
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running Radicale: a real CalDAV server over a temporary folder. Logins are not checked
/// (any password); each user owns the collections under `/<user>/`.
pub struct CalDavServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl CalDavServer {
    /// Starts it.
    pub fn start() -> CalDavServer {
        let venv = crate::python::ensure_installed(&[("radicale", RADICALE_VERSION)]);
        let port = free_port();
        let dir = tempfile::tempdir().expect("CalDAV storage dir");
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-m", "radicale", "--server-hosts"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage-filesystem-folder")
            .arg(dir.path().join("collections"))
            .args(["--auth-type", "none", "--logging-level", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start radicale");
        wait_for_port(port, &mut child, "radicale");
        CalDavServer { child, port, _dir: dir }
    }

    /// Creates the calendar `/<user>/<name>/` (MKCALENDAR) and returns its URL.
    pub async fn make_calendar(&self, user: &str, name: &str) -> String {
        let url = format!("http://127.0.0.1:{}/{user}/{name}/", self.port);
        let method = reqwest::Method::from_bytes(b"MKCALENDAR").expect("a method name");
        let response = crate::node::http_client()
            .request(method, &url)
            .basic_auth(user, Some("any"))
            .send()
            .await
            .expect("MKCALENDAR");
        assert_eq!(response.status().as_u16(), 201, "MKCALENDAR {url}");
        url
    }

    /// Stores one event (`ics`: a whole VCALENDAR) in the calendar at `url` as `uid.ics`.
    pub async fn put_event(&self, url: &str, user: &str, uid: &str, ics: &str) {
        let response = crate::node::http_client()
            .put(format!("{url}{uid}.ics"))
            .basic_auth(user, Some("any"))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics.to_owned())
            .send()
            .await
            .expect("PUT an event");
        assert!(response.status().is_success(), "PUT {uid}: {}", response.status());
    }

    /// The iCalendar texts of every event in the calendar at `url` (a CalDAV REPORT).
    pub async fn events(&self, url: &str, user: &str) -> String {
        let method = reqwest::Method::from_bytes(b"REPORT").expect("a method name");
        crate::node::http_client()
            .request(method, url)
            .basic_auth(user, Some("any"))
            .header("Depth", "1")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><C:calendar-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\
                 <D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\"/></C:filter></C:calendar-query>",
            )
            .send()
            .await
            .expect("REPORT")
            .text()
            .await
            .expect("REPORT body")
    }
}

impl Drop for CalDavServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain-text mail from `from` to `to`.
pub fn message(from: &str, to: &str, subject: &str, message_id: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The `[[email]]` section for a coworker's mailbox on these servers.
pub fn email_section(name: &str, coworker: &str, address: &str, imap: &ImapServer, smtp: &SmtpServer) -> String {
    format!(
        "[[email]]\nname = \"{name}\"\ncoworker = \"{coworker}\"\naddress = \"{address}\"\nimap_url = \"{}\"\nsmtp_url = \"{}\"\nusername = \"{IMAP_USER}\"\npassword = \"{IMAP_PASSWORD}\"\npoll_secs = 5\n",
        imap.url(),
        smtp.url()
    )
}
