//! HTTPS (`--tls-cert`/`--tls-key`): the API through a real TLS client (reqwest on rustls) that
//! trusts a certificate made for the test; clients that do not trust it, or do not speak TLS, get
//! nothing; a stalled handshake is cut at the header timeout; unusable PEM is refused with a
//! reason.

use std::time::Duration;

use agentyard_client::Client;
use agentyard_core::TaskStatus;
use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest};
use agentyard_server::ServerConfig;
use agentyard_server::config::Tls;
use agentyard_server::http::TlsError;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::{TestApp, agent, q};

/// A self-signed certificate for `localhost` and its key, as PEM.
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

async fn spawn_https(config: ServerConfig) -> (TestApp, String) {
    let (cert, key) = certificate();
    let tls = Tls::from_pem(cert.as_bytes(), key.as_bytes()).expect("usable PEM");
    let (backend, _guard) = crate::backends::memory_store().await.expect("the memory store");
    let app = TestApp::spawn_with(
        backend,
        ServerConfig {
            tls: Some(tls),
            ..config
        },
    )
    .await;
    (app, cert)
}

/// A client that trusts `cert` (and nothing else) and finds `localhost` at the server.
fn trusting(app: &TestApp, cert: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).expect("the certificate"))
        .resolve("localhost", app.addr)
        .build()
        .expect("a TLS client")
}

fn https(app: &TestApp) -> String {
    format!("https://localhost:{}", app.addr.port())
}

#[tokio::test]
async fn the_api_answers_over_https_to_a_client_that_trusts_the_certificate() {
    let (app, cert) = spawn_https(ServerConfig::default()).await;
    let client = Client::with_http(https(&app), trusting(&app, &cert));
    assert_eq!(client.health().await.expect("health over TLS").status, "ok");
    let task = client
        .create_task(&CreateTaskRequest::new(q("secure"), json!({"n": 1})))
        .await
        .expect("create");
    let claimed = client
        .claim(&q("secure"), &ClaimRequest::new(agent("tls-worker")))
        .await
        .expect("claim")
        .tasks
        .pop()
        .expect("the task");
    assert_eq!(claimed.id, task.id);
    let lease = claimed.lease.expect("a lease");
    let done = client
        .complete(
            claimed.id,
            &CompleteRequest {
                lease_token: lease.token,
                result: Some(json!("ok")),
                artifacts: None,
            },
        )
        .await
        .expect("complete");
    assert_eq!(done.status, TaskStatus::Succeeded);
    app.stop().await;
}

#[tokio::test]
async fn clients_that_do_not_trust_the_certificate_or_speak_plain_http_get_nothing() {
    let (app, _cert) = spawn_https(ServerConfig::default()).await;
    let (other, _) = certificate();
    let distrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(other.as_bytes()).expect("a certificate"))
        .resolve("localhost", app.addr)
        .build()
        .expect("a TLS client");
    let refused = distrusting.get(format!("{}/health", https(&app))).send().await;
    assert!(refused.is_err(), "{refused:?}");
    let plain = reqwest::Client::new().get(app.url("/health")).send().await;
    assert!(plain.is_err(), "{plain:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_at_the_header_timeout() {
    let (app, _cert) = spawn_https(ServerConfig {
        header_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());
    app.stop().await;
}

#[test]
fn unusable_pem_is_refused_with_a_reason() {
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    let check = |cert: &str, key: &str, expected: &str| {
        let err = Tls::from_pem(cert.as_bytes(), key.as_bytes()).expect_err("refused");
        assert!(err.to_string().contains(expected), "{err}");
        err
    };
    assert!(matches!(
        check("", &key, "no PEM certificate"),
        TlsError::NoCertificate { .. }
    ));
    assert!(matches!(
        check(&cert, "", "no PEM private key"),
        TlsError::BadKey { .. }
    ));
    assert!(matches!(
        check(&cert, &other_key, "cannot be used together"),
        TlsError::Rejected(_)
    ));
    let missing =
        Tls::from_pem_files("/nonexistent/cert.pem".as_ref(), "/nonexistent/key.pem".as_ref()).expect_err("refused");
    assert!(missing.to_string().contains("/nonexistent/cert.pem"), "{missing}");
}
