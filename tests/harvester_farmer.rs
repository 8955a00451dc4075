//! `p2pool harvester --farmer`: the harvester against a small farmer written here (rustls server
//! with a private CA, websocket, chia framing), on loopback. The full session (handshake, plot
//! sync, signage points, signatures) uses k18 plots chiapos makes with real BLS keys in their memos
//! (`tests/harvester/make_keyed_plot.py`; "skipped: …" without the plotting venv); the refusals
//! (wrong network, foreign CA, malformed message) need no plots.

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use chia_bls::{PublicKey, SecretKey, Signature};
use chia_protocol::{Bytes32, Handshake, NodeType};
use chia_traits::Streamable;
use futures::{SinkExt, StreamExt};
use p2pool::harvester::client::{CertSource, FarmConfig, Harvester, SessionError};
use p2pool::harvester::plots::Consensus;
use p2pool::harvester::protocol::{self as p, msg, Frame};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sharechain::pospace;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// A CA written as `private_ca.{crt,key}` into `dir`, and a farmer certificate it issued.
struct Pki {
    server: Arc<rustls::ServerConfig>,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Chia");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Chia CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("private_ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("private_ca.key"), ca_key.serialize_pem()).unwrap();

    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["chia.net".into()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "Chia");
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    Pki {
        server: Arc::new(server),
    }
}

async fn accept(listener: &TcpListener, pki: &Pki) -> Ws {
    let (tcp, _) = listener.accept().await.unwrap();
    let tls = tokio_rustls::TlsAcceptor::from(pki.server.clone())
        .accept(tcp)
        .await
        .expect("TLS accept (client certificate from the private CA)");
    let certs: Vec<CertificateDer<'_>> = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(certs.len(), 1, "the harvester presents its certificate");
    tokio_tungstenite::accept_async(tls).await.unwrap()
}

async fn recv(ws: &mut Ws) -> Frame {
    loop {
        match ws.next().await.expect("harvester closed").unwrap() {
            WsMessage::Binary(b) => return Frame::decode(&b).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected websocket message {other:?}"),
        }
    }
}

async fn send<T: Streamable>(ws: &mut Ws, msg_type: u8, id: Option<u16>, payload: &T) {
    let frame = Frame::new(msg_type, id, "test", payload).unwrap();
    ws.send(WsMessage::Binary(frame.encode().unwrap().into()))
        .await
        .unwrap();
}

/// Reads the harvester's handshake and answers as a farmer on `network`.
async fn handshake(ws: &mut Ws, network: &str) {
    let hello = recv(ws).await;
    assert_eq!(hello.msg_type, msg::HANDSHAKE);
    let hello: Handshake = hello.payload("handshake").unwrap();
    assert_eq!(hello.network_id, "mainnet");
    assert_eq!(hello.protocol_version, "0.0.38");
    assert_eq!(hello.node_type, NodeType::Harvester);
    assert_eq!(hello.server_port, 0);
    assert_eq!(
        hello.capabilities,
        vec![(1, "1".into()), (2, "1".into()), (3, "1".into())]
    );
    let farmer = Handshake {
        network_id: network.into(),
        protocol_version: "0.0.38".into(),
        software_version: "2.7.5".into(),
        server_port: 8447,
        node_type: NodeType::Farmer,
        capabilities: hello.capabilities,
    };
    send(ws, msg::HANDSHAKE, None, &farmer).await;
}

fn config(addr: String, dir: &Path, plots: Vec<PathBuf>) -> FarmConfig {
    FarmConfig {
        farmer: addr,
        plots,
        certs: CertSource::CaDir(dir.to_owned()),
        network_id: "mainnet".into(),
        consensus: Consensus::default(),
    }
}

async fn session_error(
    farmer: impl FnOnce(Ws) -> futures::future::BoxFuture<'static, ()> + Send + 'static,
) -> SessionError {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let harvester = Harvester::new(config(addr, dir.path(), vec![])).unwrap();
    let server = tokio::spawn(async move {
        let ws = accept(&listener, &pki).await;
        farmer(ws).await;
    });
    let result = tokio::time::timeout(Duration::from_secs(30), harvester.session())
        .await
        .expect("session bounded");
    server.abort();
    result.expect_err("the session must fail")
}

#[tokio::test]
async fn wrong_network_is_refused() {
    let err = session_error(|mut ws| {
        Box::pin(async move {
            handshake(&mut ws, "testnet11").await;
            let _ = ws.next().await;
        })
    })
    .await;
    assert!(
        matches!(&err, SessionError::NetworkMismatch { ours, theirs } if ours == "mainnet" && theirs == "testnet11"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_message_ends_the_session() {
    let err = session_error(|mut ws| {
        Box::pin(async move {
            handshake(&mut ws, "mainnet").await;
            // A harvester_handshake whose data length runs past the frame.
            ws.send(WsMessage::Binary(vec![3, 0, 0, 0, 1, 0, 9].into()))
                .await
                .unwrap();
            let _ = ws.next().await;
        })
    })
    .await;
    assert!(matches!(err, SessionError::Protocol(_)), "{err}");
}

#[tokio::test]
async fn farmer_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let _ours = pki(dir.path());
    let theirs = pki(other.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let harvester = Harvester::new(config(addr, dir.path(), vec![])).unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(theirs.server.clone())
            .accept(tcp)
            .await;
    });
    let err = tokio::time::timeout(Duration::from_secs(30), harvester.session())
        .await
        .unwrap()
        .expect_err("foreign farmer certificate");
    server.abort();
    assert!(matches!(err, SessionError::Tls(_)), "{err}");
}

/// A plot with real keys, as `make_keyed_plot.py` reports it.
struct KeyedPlot {
    path: PathBuf,
    farmer_sk: SecretKey,
    pool_pk: PublicKey,
    plot_pk: PublicKey,
}

fn keyed_plots() -> Result<Vec<KeyedPlot>, String> {
    let home = PathBuf::from(std::env::var_os("HOME").ok_or("no HOME")?);
    let python = std::env::var_os("PLOTFILE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/p2pool-rs/venv-plots/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import chiapos, chia_rs"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!("{} lacks chiapos or chia_rs", python.display()));
    }
    let dir = home.join(".cache/p2pool-rs/plots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester/make_keyed_plot.py");
    let mut plots = Vec::new();
    for (name, kind) in [("hkey-og", "og"), ("hkey-contract", "contract")] {
        let out = Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .args([name, kind])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "make_keyed_plot.py: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // chiapos prints its progress on stdout: the report is the last line.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("")).map_err(|e| e.to_string())?;
        let hex32 = |k: &str| -> [u8; 32] {
            hex::decode(v[k].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let hex48 = |k: &str| -> [u8; 48] {
            hex::decode(v[k].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        plots.push(KeyedPlot {
            path: PathBuf::from(v["plot"].as_str().unwrap()),
            farmer_sk: SecretKey::from_bytes(&hex32("farmer_sk")).unwrap(),
            pool_pk: PublicKey::from_bytes(&hex48("pool_pk")).unwrap(),
            plot_pk: PublicKey::from_bytes(&hex48("plot_pk")).unwrap(),
        });
    }
    Ok(plots)
}

/// A signage point at which `plot` passes the mainnet filter (peak height 0: 9 bits) and has a
/// quality.
fn signage_point_for(
    plot: &plotfile::Prover<plotfile::FileStorage>,
    challenge: [u8; 32],
) -> [u8; 32] {
    for i in 0u32.. {
        let sp = sha256::Hash::hash(&i.to_be_bytes()).to_byte_array();
        if pospace::passes_plot_filter(9, plot.id(), &challenge, &sp)
            && !plot
                .qualities(&pospace::pos_challenge(plot.id(), &challenge, &sp))
                .unwrap()
                .is_empty()
        {
            return sp;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_session_with_plot_sync_proofs_and_signatures() {
    let plots = match keyed_plots() {
        Ok(p) => p,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let bad = dir.path().join("bad.plot");
    std::fs::write(&bad, b"not a plot").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut paths: Vec<PathBuf> = plots.iter().map(|p| p.path.clone()).collect();
    paths.push(bad.clone());
    let harvester = Arc::new(Harvester::new(config(addr, dir.path(), paths)).unwrap());
    assert_eq!(
        harvester.plots().len(),
        2,
        "both keyed plots open, their ids match their memos"
    );
    let running = harvester.clone();
    let task = tokio::spawn(async move { running.run().await });

    let farm = async {
        let mut ws = accept(&listener, &pki).await;
        handshake(&mut ws, "mainnet").await;
        let farmer_pk = plots[0].farmer_sk.public_key();
        send(
            &mut ws,
            msg::HARVESTER_HANDSHAKE,
            None,
            &p::HarvesterHandshake {
                farmer_public_keys: vec![farmer_pk],
                pool_public_keys: vec![plots[0].pool_pk],
            },
        )
        .await;

        // Plot sync, answered message by message.
        let mut types = Vec::new();
        let mut loaded = Vec::new();
        let mut invalid = Vec::new();
        loop {
            let f = recv(&mut ws).await;
            types.push(f.msg_type);
            let identifier: p::PlotSyncIdentifier =
                Streamable::from_bytes_unchecked(&f.data.as_ref()[..24]).unwrap();
            assert_eq!(identifier.message_id as usize, types.len() - 1);
            match f.msg_type {
                msg::PLOT_SYNC_LOADED2 => {
                    loaded.extend(f.payload::<p::PlotSyncPlotList2>("loaded").unwrap().data)
                }
                msg::PLOT_SYNC_INVALID => {
                    invalid.extend(f.payload::<p::PlotSyncPathList>("invalid").unwrap().data)
                }
                _ => {}
            }
            let response = p::PlotSyncResponse {
                identifier,
                message_type: i16::from(f.msg_type),
                error: None,
            };
            send(&mut ws, msg::PLOT_SYNC_RESPONSE, None, &response).await;
            if f.msg_type == msg::PLOT_SYNC_DONE {
                break;
            }
        }
        assert_eq!(types, [78, 112, 80, 81, 82, 83, 84]);
        assert_eq!(
            invalid,
            [std::path::absolute(&bad).unwrap().display().to_string()]
        );
        assert_eq!(loaded.len(), 2);
        for plot in &plots {
            // Plot keys as chia_rs derives them.
            let info = loaded
                .iter()
                .find(|i| i.plot_public_key == plot.plot_pk)
                .expect("plot listed");
            assert_eq!(info.size, 18);
            assert_eq!(
                info.filename,
                std::path::absolute(&plot.path)
                    .unwrap()
                    .display()
                    .to_string()
            );
        }

        // One signage point per plot; the contract plot only qualifies at its pool difficulty.
        let contract_ph = loaded
            .iter()
            .find_map(|i| i.pool_contract_puzzle_hash)
            .expect("contract plot");
        for (n, plot) in plots.iter().enumerate() {
            let prover =
                plotfile::Prover::open_path(&plot.path, plotfile::Options::default()).unwrap();
            let challenge = [n as u8 + 1; 32];
            let sp_hash = signage_point_for(&prover, challenge);
            let (difficulty, sub_slot_iters) = if n == 0 { (1, 1 << 62) } else { (1 << 50, 64) };
            let sp = p::NewSignagePointHarvester2 {
                challenge_hash: Bytes32::new(challenge),
                difficulty,
                sub_slot_iters,
                signage_point_index: 5,
                sp_hash: Bytes32::new(sp_hash),
                pool_difficulties: vec![p::PoolDifficulty {
                    difficulty: 1,
                    sub_slot_iters: 1 << 62,
                    pool_contract_puzzle_hash: contract_ph,
                }],
                peak_height: 0,
                last_tx_height: 0,
                filter_challenge: None,
            };
            send(&mut ws, msg::NEW_SIGNAGE_POINT_HARVESTER, None, &sp).await;
            let mut proofs = Vec::new();
            let info = loop {
                let f = recv(&mut ws).await;
                match f.msg_type {
                    msg::NEW_PROOF_OF_SPACE => {
                        proofs.push(f.payload::<p::NewProofOfSpace>("proof").unwrap())
                    }
                    msg::FARMING_INFO => {
                        break f.payload::<p::FarmingInfo>("farming_info").unwrap()
                    }
                    other => panic!("unexpected message {other}"),
                }
            };
            assert_eq!(info.total_plots, 2);
            assert!(info.passed >= 1);
            assert_eq!(info.proofs as usize, proofs.len());
            let ours: Vec<_> = proofs
                .iter()
                .filter(|x| x.proof.plot_public_key == plot.plot_pk)
                .collect();
            assert!(!ours.is_empty(), "plot {n} answers its signage point");
            for proof in &ours {
                let pos = &proof.proof;
                let want = pospace::pos_challenge(prover.id(), &challenge, &sp_hash);
                assert_eq!(pos.challenge.to_bytes(), want);
                let quality =
                    pospace::validate_proof(prover.id(), pos.size, &want, pos.proof.as_ref())
                        .unwrap();
                let path = std::path::absolute(&plot.path)
                    .unwrap()
                    .display()
                    .to_string();
                assert_eq!(
                    proof.plot_identifier,
                    format!("{}{path}", hex::encode(quality))
                );
                assert_eq!(proof.signage_point_index, 5);
            }

            // The harvester's half plus the farmer's (and the taproot key's) verify against the
            // plot key, as the farmer checks.
            let messages = vec![Bytes32::new([0xaa; 32]), Bytes32::new([n as u8; 32])];
            let request = p::RequestSignatures {
                plot_identifier: ours[0].plot_identifier.clone(),
                challenge_hash: Bytes32::new(challenge),
                sp_hash: Bytes32::new(sp_hash),
                messages: messages.clone(),
                message_data: None,
                rc_block_unfinished: None,
            };
            send(&mut ws, msg::REQUEST_SIGNATURES, Some(4242), &request).await;
            let f = recv(&mut ws).await;
            assert_eq!((f.msg_type, f.id), (msg::RESPOND_SIGNATURES, Some(4242)));
            let response: p::RespondSignatures = f.payload("respond_signatures").unwrap();
            assert_eq!(response.farmer_pk, farmer_pk);
            let mut extra = vec![plot.farmer_sk.clone()];
            if n == 1 {
                let sum = &response.local_pk + &farmer_pk;
                let mut seed = sum.to_bytes().to_vec();
                seed.extend(response.local_pk.to_bytes());
                seed.extend(farmer_pk.to_bytes());
                extra.push(SecretKey::from_seed(
                    &sha256::Hash::hash(&seed).to_byte_array(),
                ));
            }
            let mut plot_pk = &response.local_pk + &farmer_pk;
            for sk in &extra[1..] {
                plot_pk = &plot_pk + &sk.public_key();
            }
            assert_eq!(plot_pk, plot.plot_pk);
            assert_eq!(response.message_signatures.len(), 2);
            for ((m, sig), want) in response.message_signatures.iter().zip(&messages) {
                assert_eq!(m, want);
                let mut aug = plot.plot_pk.to_bytes().to_vec();
                aug.extend_from_slice(m.as_ref());
                let mut total: Signature = sig.clone();
                for sk in &extra {
                    total.aggregate(&chia_bls::sign_raw(sk, &aug));
                }
                assert!(
                    chia_bls::verify(&total, &plot.plot_pk, m.as_ref()),
                    "aggregate verifies"
                );
            }
        }

        // request_plots (an empty payload) is answered in the 0.0.38 layout, same id.
        let request = Frame {
            msg_type: msg::REQUEST_PLOTS,
            id: Some(7),
            data: Default::default(),
        };
        ws.send(WsMessage::Binary(request.encode().unwrap().into()))
            .await
            .unwrap();
        let f = recv(&mut ws).await;
        assert_eq!((f.msg_type, f.id), (msg::RESPOND_PLOTS2, Some(7)));
        let listed: p::RespondPlots2 = f.payload("respond_plots2").unwrap();
        assert_eq!(listed.plots.len(), 2);
    };
    let result = tokio::time::timeout(Duration::from_secs(120), farm).await;
    task.abort();
    result.expect("session finished in time");
}

#[tokio::test]
async fn reconnects_after_the_farmer_closes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let harvester = Harvester::new(config(addr, dir.path(), vec![])).unwrap();
    let task = tokio::spawn(async move { harvester.run().await });
    let farm = async {
        let mut ws = accept(&listener, &pki).await;
        handshake(&mut ws, "mainnet").await;
        ws.close(None).await.unwrap();
        drop(ws);
        // chia's harvester retries every 3 s; so does ours.
        let started = std::time::Instant::now();
        let mut ws = accept(&listener, &pki).await;
        handshake(&mut ws, "mainnet").await;
        started.elapsed()
    };
    let waited = tokio::time::timeout(Duration::from_secs(30), farm).await;
    task.abort();
    let waited = waited.expect("the harvester came back");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
}
