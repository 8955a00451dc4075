//! The HTTP range backend against a real S3-compatible server on loopback (moto's server, from
//! the same venv as chiapos): a bucket, the plot uploaded, proofs read by range requests.

#![allow(clippy::print_stdout)] // reason: tests report what they compared and what they skipped

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plotfile::{HttpStorage, Prover};

/// Stops the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Result<(Server, u16), String> {
    let py = common::python().ok_or("chiapos venv not installed")?;
    let moto = py.with_file_name("moto_server");
    if !moto.exists() {
        return Err("moto_server not installed in the venv (pip install 'moto[server]')".into());
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("moto_server did not start in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server, port))
}

#[test]
fn proofs_over_s3_range_requests_match_chiapos() {
    let dir = match common::make_plots(&["k18a:18:300"]) {
        Ok(d) => d,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let (_server, port) = match start_moto() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    // moto accepts unsigned requests: path-style bucket creation, then a public-read object
    // (anonymous GETs of a private object are refused, as S3 refuses them).
    agent.put(&format!("{base}/plots")).call().unwrap();
    let bytes = std::fs::read(dir.join("k18a.plot")).unwrap();
    agent
        .put(&format!("{base}/plots/k18a.plot"))
        .set("x-amz-acl", "public-read")
        .set("Content-Type", "application/octet-stream")
        .send_bytes(&bytes)
        .unwrap();

    let storage =
        HttpStorage::open(&format!("{base}/plots/k18a.plot"), Duration::from_secs(30)).unwrap();
    let prover = Prover::open(storage).unwrap();
    let mut proofs = 0;
    for case in common::expected(&dir, "k18a").iter().take(40) {
        let proved = prover.prove(&case.challenge).unwrap();
        let got: Vec<_> = proved
            .proofs
            .iter()
            .map(|p| (p.quality, p.proof.clone()))
            .collect();
        assert_eq!(got, case.proofs);
        proofs += got.len();
    }
    println!("{proofs} proofs over HTTP range requests equal chiapos");
    assert!(proofs > 0);

    let missing = HttpStorage::open(&format!("{base}/plots/nope.plot"), Duration::from_secs(5));
    assert!(missing.is_err());
}
