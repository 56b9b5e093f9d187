//! The broker link secured, over a real `nats-server` on 127.0.0.1: two hubs
//! relay pose across a `tls://` broker whose certificate a private CA signed
//! (`cluster_ca_file`), and across one that also verifies the hubs' client
//! certificates; a hub without the broker's CA, or with another CA, does not
//! connect, says why in its log, counts it, and relays between its own
//! members; a user and password are accepted and a wrong password refused,
//! said and counted, the password never logged; a CA file that is not PEM
//! leaves a hub alone, serving its members; a reload (SIGHUP) takes a new CA
//! and client certificate for the next connection. Each test starts and
//! stops its own broker.

use std::time::{Duration, Instant};

use poselink::hub::HubConfig;
use poselink::proto::{Kind, Role};

use crate::common::{
    Client, HubProcess, NatsServer, PoseStream, TestHub, TlsFiles, http_get_at, metric_in,
};

/// A hub of the cluster through `url`, with `access` (TLS, credentials).
fn hub(url: &str, node: &str, access: HubConfig) -> TestHub {
    TestHub::start(HubConfig {
        cluster: Some(url.into()),
        node: Some(node.into()),
        cluster_heartbeat_ms: 200,
        cluster_node_timeout_ms: 1_000,
        ..access
    })
}

fn path(p: &std::path::Path) -> Option<String> {
    Some(p.to_string_lossy().into_owned())
}

/// `GET /metrics` of a hub process: the value of `name` (labels included).
fn metric_of(addr: std::net::SocketAddr, name: &str) -> Option<f64> {
    metric_in(&http_get_at(addr, None, "/metrics").1, name)
}

/// Waits (bounded) until `read` gives at least `want`.
fn wait_for(mut read: impl FnMut() -> f64, want: f64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if read() >= want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits (bounded) for a log line of `hub` holding every one of `words`.
fn wait_for_line(hub: &HubProcess, words: &[&str], within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(l) = hub
            .last_lines(200)
            .into_iter()
            .find(|l| words.iter().all(|w| l.contains(w)))
        {
            return Some(l);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Waits up to 5 s for both hubs to report the broker up; fails with `why`.
fn both_up(a: &TestHub, b: &TestHub, why: &str) {
    for h in [a, b] {
        assert!(
            wait_for(
                || h.metric("poselink_cluster_broker_up"),
                1.0,
                Duration::from_secs(5)
            ),
            "{why}"
        );
    }
}

/// A member on `a` publishes pose; a viewer of the same room on `b` gets it
/// (bounded: 3 s to hear of the member, 20 frames 50 ms apart).
fn pose_crosses(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    let mut p = Client::session(a, "");
    let ha = p.join("gym", Role::Member).unwrap();
    let mut v = Client::session(b, "");
    v.join("gym", Role::Viewer).unwrap();
    let user = format!("anon-{}", p.member);
    let heard = v.recv_until(Duration::from_secs(3), |g| {
        g.kind() == Kind::MemberJoined
            && g.with(
                |m| matches!(m, poselink::proto::Message::MemberJoined(j) if j.member.user == user),
            )
    });
    if heard.is_none() {
        return false;
    }
    let mut poses = PoseStream::new(11);
    for _ in 0..20 {
        let m = poses.next(ha, p.member).to_vec();
        p.send_bytes(&m);
        if v.recv_until(Duration::from_millis(50), |g| g.kind() == Kind::Pose)
            .is_some()
        {
            return true;
        }
    }
    false
}

/// Two members of one hub relay pose to each other (the hub alone).
fn relays_locally(addr: std::net::SocketAddr) -> bool {
    let mut p = Client::session(addr, "");
    let ha = p.join("solo", Role::Member).unwrap();
    let mut q = Client::session(addr, "");
    q.join("solo", Role::Viewer).unwrap();
    let mut poses = PoseStream::new(2);
    (0..5).all(|_| {
        let m = poses.next(ha, p.member).to_vec();
        p.send_bytes(&m);
        q.recv_until(Duration::from_secs(1), |g| g.kind() == Kind::Pose)
            .is_some()
    })
}

#[test]
fn two_hubs_relay_pose_across_a_tls_broker_with_a_private_ca() {
    let files = TlsFiles::local("nats-ca");
    let nats = NatsServer::start_tls(&files, &[]);
    assert!(nats.url().starts_with("tls://"));
    let access = HubConfig {
        cluster_ca_file: files.ca(),
        ..HubConfig::local_dev()
    };
    let (a, b) = (
        hub(&nats.url(), "a", access.clone()),
        hub(&nats.url(), "b", access),
    );
    both_up(&a, &b, "the hub reached the TLS broker");
    assert!(pose_crosses(a.addr, b.addr), "pose crossed the TLS broker");
    assert_eq!(
        a.metric("poselink_cluster_broker_failures_total{reason=\"tls\"}"),
        0.0
    );
}

#[test]
fn hubs_with_client_certificates_relay_across_a_broker_that_verifies_them() {
    let server = TlsFiles::local("nats-verify");
    // The hubs' certificate, from a CA of its own that the broker trusts.
    let client = TlsFiles::make("hub-client", &["hub"], -1, 30);
    let ca = client.ca_file.to_string_lossy().into_owned();
    let nats = NatsServer::start_tls(&server, &["--tlsverify", "--tlscacert", &ca]);
    let access = HubConfig {
        cluster_ca_file: server.ca(),
        cluster_cert_file: path(&client.cert),
        cluster_key_file: path(&client.key),
        ..HubConfig::local_dev()
    };
    let (a, b) = (
        hub(&nats.url(), "a", access.clone()),
        hub(&nats.url(), "b", access.clone()),
    );
    both_up(&a, &b, "the broker took the hub's certificate");
    assert!(pose_crosses(a.addr, b.addr));
    // Without a client certificate, the same broker refuses the hub.
    let c = hub(
        &nats.url(),
        "c",
        HubConfig {
            cluster_cert_file: None,
            cluster_key_file: None,
            ..access
        },
    );
    assert!(
        wait_for(
            || c.metric("poselink_cluster_broker_failures_total{reason=\"other\"}"),
            2.0,
            Duration::from_secs(5)
        ),
        "attempts refused and counted"
    );
    assert_eq!(c.metric("poselink_cluster_broker_up"), 0.0);
}

#[test]
fn a_hub_without_the_brokers_ca_does_not_connect_says_why_and_relays_alone() {
    let files = TlsFiles::local("nats-untrusted");
    let other = TlsFiles::local("other-ca");
    let nats = NatsServer::start_tls(&files, &[]);
    let url = nats.url();
    let other_ca = other.ca_file.to_string_lossy().into_owned();
    // No CA at all (the system's roots), and another CA: the `poselink hub`
    // binary, whose log the test reads.
    let no_ca = HubProcess::start(&["--cluster", &url, "--node", "a"]);
    let wrong_ca = HubProcess::start(&[
        "--cluster",
        &url,
        "--node",
        "b",
        "--cluster-ca-file",
        &other_ca,
    ]);
    let line = wait_for_line(
        &no_ca,
        &[
            "ERROR",
            "unknown issuer",
            "--cluster-ca-file",
            "own members",
        ],
        Duration::from_secs(5),
    );
    assert!(line.is_some(), "said why: {:?}", no_ca.last_lines(10));
    let line = wait_for_line(
        &wrong_ca,
        &[
            "ERROR",
            "not signed by the CA in cluster_ca_file",
            &other_ca,
        ],
        Duration::from_secs(5),
    );
    assert!(line.is_some(), "said why: {:?}", wrong_ca.last_lines(10));
    for h in [&no_ca, &wrong_ca] {
        let tls = "poselink_cluster_broker_failures_total{reason=\"tls\"}";
        assert!(
            wait_for(
                || metric_of(h.addr, tls).unwrap_or(0.0),
                2.0,
                Duration::from_secs(5)
            ),
            "refusals counted"
        );
        assert_eq!(metric_of(h.addr, "poselink_cluster_broker_up"), Some(0.0));
        assert!(relays_locally(h.addr), "the hub serves its own members");
    }
    // Said once, not once per attempt (every 250 ms).
    std::thread::sleep(Duration::from_millis(1_000));
    let said = no_ca
        .last_lines(200)
        .iter()
        .filter(|l| l.contains("unknown issuer"))
        .count();
    assert_eq!(said, 1, "{:?}", no_ca.last_lines(10));
}

#[test]
fn a_user_and_password_are_accepted_and_a_wrong_password_is_refused() {
    let nats = NatsServer::start_with(&["--user", "hub", "--pass", "right-pass"]);
    let dir = std::env::temp_dir().join(format!(
        "poselink-nats-auth-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pw"), "right-pass\n").unwrap();
    let pw = dir.join("pw").to_string_lossy().into_owned();
    // The password from a file, by the binary's flags.
    let good = HubProcess::start(&[
        "--cluster",
        &nats.url(),
        "--node",
        "a",
        "--cluster-user",
        "hub",
        "--cluster-password-file",
        &pw,
    ]);
    assert!(
        wait_for(
            || metric_of(good.addr, "poselink_cluster_broker_up").unwrap_or(0.0),
            1.0,
            Duration::from_secs(5)
        ),
        "the right password is accepted: {:?}",
        good.last_lines(10)
    );
    // A wrong password, in the URL (still accepted there): refused, said,
    // counted, and never logged.
    let url = format!("nats://hub:wrong-pass@127.0.0.1:{}", nats.port);
    let bad = HubProcess::start(&["--cluster", &url, "--node", "b"]);
    let line = wait_for_line(
        &bad,
        &["ERROR", "authorization violation", "cluster_password"],
        Duration::from_secs(5),
    );
    assert!(line.is_some(), "said why: {:?}", bad.last_lines(10));
    let auth = "poselink_cluster_broker_failures_total{reason=\"auth\"}";
    assert!(wait_for(
        || metric_of(bad.addr, auth).unwrap_or(0.0),
        1.0,
        Duration::from_secs(5)
    ));
    assert_eq!(metric_of(bad.addr, "poselink_cluster_broker_up"), Some(0.0));
    assert!(relays_locally(bad.addr));
    let lines = bad.last_lines(200);
    assert!(
        lines.iter().any(|l| l.contains("nats://hub:***@127.0.0.1")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("wrong-pass")), "{lines:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_token_is_accepted_by_a_broker_that_wants_one() {
    let nats = NatsServer::start_with(&["--auth", "the-token-0123"]);
    let good = hub(
        &nats.url(),
        "a",
        HubConfig {
            cluster_token: Some("the-token-0123".into()),
            ..HubConfig::local_dev()
        },
    );
    let bad = hub(
        &nats.url(),
        "b",
        HubConfig {
            cluster_token: Some("not-the-token".into()),
            ..HubConfig::local_dev()
        },
    );
    assert!(wait_for(
        || good.metric("poselink_cluster_broker_up"),
        1.0,
        Duration::from_secs(5)
    ));
    assert!(wait_for(
        || bad.metric("poselink_cluster_broker_failures_total{reason=\"auth\"}"),
        1.0,
        Duration::from_secs(5)
    ));
    assert_eq!(bad.metric("poselink_cluster_broker_up"), 0.0);
}

#[test]
fn a_ca_file_that_is_not_pem_leaves_the_hub_alone_serving_its_members() {
    let files = TlsFiles::local("nats-bad-ca");
    let nats = NatsServer::start_tls(&files, &[]);
    let garbage = files.dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let h = hub(
        &nats.url(),
        "a",
        HubConfig {
            cluster_ca_file: path(&garbage),
            ..HubConfig::local_dev()
        },
    );
    assert!(wait_for(
        || h.metric("poselink_cluster_broker_failures_total{reason=\"config\"}"),
        1.0,
        Duration::from_secs(5)
    ));
    assert_eq!(h.metric("poselink_cluster_broker_up"), 0.0);
    assert!(relays_locally(h.addr));
}

#[test]
fn a_reload_takes_new_broker_certificates_for_the_next_connection() {
    let server = TlsFiles::local("nats-reload");
    // The certificate the broker trusts for hubs, from a CA of its own.
    let trusted = TlsFiles::make("hub-client-trusted", &["hub"], -1, 30);
    let ca = trusted.ca_file.to_string_lossy().into_owned();
    let nats = NatsServer::start_tls(&server, &["--tlsverify", "--tlscacert", &ca]);
    // The hub's files at first: another CA than the broker's, and a client
    // certificate the broker does not trust.
    let files = TlsFiles::make("hub-client-reload", &["hub"], -1, 30);
    let h = hub(
        &nats.url(),
        "a",
        HubConfig {
            cluster_ca_file: files.ca(),
            cluster_cert_file: path(&files.cert),
            cluster_key_file: path(&files.key),
            ..HubConfig::local_dev()
        },
    );
    let tls = "poselink_cluster_broker_failures_total{reason=\"tls\"}";
    assert!(
        wait_for(|| h.metric(tls), 2.0, Duration::from_secs(5)),
        "the broker's certificate refused, counted"
    );
    assert_eq!(h.metric("poselink_cluster_broker_up"), 0.0);
    // The right files in place, then the reload SIGHUP asks for: the
    // attempts that go on take both, with no restart.
    std::fs::copy(&server.ca_file, &files.ca_file).unwrap();
    std::fs::copy(&trusted.cert, &files.cert).unwrap();
    std::fs::copy(&trusted.key, &files.key).unwrap();
    h.handle.reload_tls();
    assert!(
        wait_for(
            || h.metric("poselink_cluster_broker_up"),
            1.0,
            Duration::from_secs(5)
        ),
        "the reloaded CA and client certificate took the hub to the broker"
    );
}
