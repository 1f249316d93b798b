//! A real S3-compatible server for tests (issue 18): moto's server mode, from PyPI at pinned
//! versions in the shared test virtual environment (`.ci/run` installs them).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto version the tests run.
pub const MOTO_VERSION: &str = "5.1.18";
/// Flask version moto's server runs on.
pub const FLASK_VERSION: &str = "3.1.3";
/// flask-cors version moto's server needs.
pub const FLASK_CORS_VERSION: &str = "6.0.5";

/// Credentials moto accepts (it checks none).
pub const ACCESS_KEY_ID: &str = "test-access-key";
/// The secret key for [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "test-secret-key";

/// A running moto server.
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl S3Server {
    /// Starts it.
    pub fn start() -> S3Server {
        let venv = crate::python::ensure_installed(&[
            ("moto", MOTO_VERSION),
            ("flask", FLASK_VERSION),
            ("flask-cors", FLASK_CORS_VERSION),
        ]);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited before listening ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) {
        let response = crate::node::http_client()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .expect("create a bucket");
        assert!(
            response.status().is_success(),
            "create bucket {name}: {}",
            response.status()
        );
    }

    /// The keys in a bucket (ListObjectsV2), every page.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = crate::node::http_client()
            .get(format!("{}/{bucket}?list-type=2&max-keys=1000", self.endpoint()))
            .send()
            .await
            .expect("list a bucket")
            .text()
            .await
            .expect("the listing");
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
