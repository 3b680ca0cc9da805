//! The `svtpm-proxy` binary on a temporary channel file, driven by the
//! guest's end of the channel (`svtpm::hostchan::Channel` and its
//! adapters, the code svtpm runs) over a second mapping of the file:
//! HELLO and LOG, the state slots on disk, the HTTP relay, the simulated
//! PSP's reports verified against the chain, start-up errors, the clean
//! exit on SIGTERM and SIGINT, and the round-trip latency.

mod common;

use common::{closed_url, Broker, Env, Guest, Proxy};
use svtpm::attest::kbs::{HttpRequest, KbsError, Method, Transport};
use svtpm::attest::snp::certs::{parse_cert_table, CertKind};
use svtpm::attest::snp::payload::KEY_SEL_DEFAULT;
use svtpm::attest::snp::GuestMessenger;
use svtpm::hostchan::adapters::kbs::is_broker_unreachable;
use svtpm::hostchan::layout::OFF_HOST_READY;
use svtpm::hostchan::{ChannelGuestRequest, ChannelHttp, ChannelSlots, MsgType, Region, Status};
use svtpm::nvstate::{SlotId, SlotStore};
use svtpm_psp_sim::launch_digest;
use svtpm_snp_verify::{verify_chain, verify_report, Cert, Role, TrustAnchor};
use zerocopy::IntoBytes;

fn auth_request() -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        path: "/kbs/v0/auth".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"version":"0.4.0","tee":"snp","extra-params":""}"#.to_vec(),
    }
}

#[test]
fn hello_log_and_a_clean_exit_on_sigterm() {
    let env = Env::new();
    let proxy = Proxy::start(&env.args(&closed_url()));
    let guest = Guest::attach(&env.channel).unwrap();
    assert_eq!(
        guest.chan.lock().proxy_name(),
        format!("svtpm-proxy {}", env!("CARGO_PKG_VERSION"))
    );
    guest
        .chan
        .lock()
        .log("boot-time phase=hostchan ms=3\nsecond \x1b[31mline")
        .unwrap();
    let (status, log) = proxy.stop();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("HELLO from \"svtpm\", version 1"), "{log}");
    assert!(
        log.contains("guest: boot-time phase=hostchan ms=3"),
        "{log}"
    );
    // Control characters from the guest are escaped, not printed.
    assert!(log.contains("guest: second \\u{1b}[31mline"), "{log}");
    assert!(!log.contains('\x1b'), "{log}");
    assert!(log.contains("served 2 requests"), "{log}");
    // The header says nobody serves the channel any more.
    let (_map, region) = common::guest_region(&env.channel);
    assert_eq!(region.read_u32(OFF_HOST_READY), 0);
}

#[test]
fn slots_are_written_flushed_read_and_kept_across_restarts() {
    let env = Env::new();
    let blob_a: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    {
        let proxy = Proxy::start(&env.args(&closed_url()));
        let guest = Guest::attach(&env.channel).unwrap();
        let mut slots = ChannelSlots::new(&guest.chan);
        assert_eq!(slots.read_slot(SlotId::A).unwrap(), None);
        slots.write_slot(SlotId::A, &blob_a).unwrap();
        slots.write_slot(SlotId::B, b"slot b").unwrap();
        slots.flush().unwrap();
        assert_eq!(
            slots.read_slot(SlotId::A).unwrap().as_deref(),
            Some(&blob_a[..])
        );
        assert_eq!(
            std::fs::read(env.state.join("slot-a.svtpm")).unwrap(),
            blob_a
        );
        assert_eq!(
            std::fs::read(env.state.join("slot-b.svtpm")).unwrap(),
            b"slot b"
        );
        // SIGINT (Ctrl-C) ends it as cleanly as SIGTERM.
        let (status, log) = proxy.stop_with("INT");
        assert!(status.success(), "{status:?}");
        assert!(log.contains("stopping on a signal"), "{log}");
        assert!(log.contains("SLOT_WRITE A: 70000 bytes"), "{log}");
        assert!(log.contains("SLOT_FLUSH"), "{log}");
        // Sizes only, never blob bytes.
        assert!(!log.contains("slot b"), "{log}");
    }
    // A new proxy on the same state serves the same blobs.
    let _proxy = Proxy::start(&env.args(&closed_url()));
    let guest = Guest::attach(&env.channel).unwrap();
    let mut slots = ChannelSlots::new(&guest.chan);
    assert_eq!(slots.read_slot(SlotId::A).unwrap(), Some(blob_a));
    assert_eq!(
        slots.read_slot(SlotId::B).unwrap().as_deref(),
        Some(&b"slot b"[..])
    );
}

#[test]
fn a_second_proxy_on_the_same_state_or_channel_is_refused() {
    let env = Env::new();
    let _first = Proxy::start(&env.args(&closed_url()));
    let f = Proxy::refuses(&env.args(&closed_url()));
    assert!(!f.status.success());
    assert!(
        f.stderr.contains("in use by another process"),
        "{}",
        f.stderr
    );
    // Other state, same channel file.
    let mut args = env.args(&closed_url());
    args[3] = env.dir.path().join("other-state").display().to_string();
    let f = Proxy::refuses(&args);
    assert!(
        f.stderr.contains("served by another process"),
        "{}",
        f.stderr
    );
}

#[test]
fn http_is_relayed_to_the_broker() {
    let broker = Broker::start(200, br#"{"nonce":"bm9uY2U=","extra-params":""}"#);
    let env = Env::new();
    let proxy = Proxy::start(&env.args(&broker.url()));
    let guest = Guest::attach(&env.channel).unwrap();
    let mut http = ChannelHttp::new(&guest.chan);
    let resp = http.exchange(&auth_request()).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, br#"{"nonce":"bm9uY2U=","extra-params":""}"#);
    assert_eq!(
        resp.header("set-cookie"),
        Some("kbs-session-id=s1; Path=/kbs/v0")
    );
    // Hop-by-hop headers stay with the proxy.
    assert_eq!(resp.header("connection"), None);
    assert_eq!(resp.header("content-length"), None);
    let seen = broker.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/kbs/v0/auth")
    );
    assert_eq!(seen[0].body, auth_request().body);
    assert!(seen[0]
        .headers
        .iter()
        .any(|(n, v)| n == "Content-Type" && v == "application/json"));

    // A path escaping /kbs/v0/ is refused before the broker sees it. The
    // guest's encoder refuses it too, so it is encoded by hand.
    let mut raw = vec![0u8]; // GET
    let path = b"/kbs/v0/../admin";
    raw.extend_from_slice(&(path.len() as u16).to_le_bytes());
    raw.extend_from_slice(path);
    raw.extend_from_slice(&0u16.to_le_bytes());
    raw.extend_from_slice(&0u32.to_le_bytes());
    let r = guest
        .chan
        .lock()
        .call(MsgType::Http, &raw, 1 << 20, 5_000_000_000)
        .unwrap();
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(broker.seen().len(), 1);
    let (_, log) = proxy.stop();
    let line = log
        .lines()
        .find(|l| l.contains("HTTP POST /kbs/v0/auth"))
        .unwrap();
    assert!(line.contains("hostchan: #"), "{line}");
    assert!(line.trim_end().ends_with(" ms)") || line.trim_end().ends_with(" µs)"));
    assert!(line.contains("HTTP POST /kbs/v0/auth -> 200 ("), "{line}");
    assert!(log.contains("dot segment"), "{log}");
}

#[test]
fn an_unreachable_broker_is_upstream_unavailable() {
    let env = Env::new();
    let proxy = Proxy::start(&env.args(&closed_url()));
    let guest = Guest::attach(&env.channel).unwrap();
    let mut http = ChannelHttp::new(&guest.chan);
    let e = http.exchange(&auth_request()).unwrap_err();
    assert!(is_broker_unreachable(&e), "{e:?}");
    let raw = svtpm::hostchan::http::encode_request(&auth_request()).unwrap();
    let r = guest
        .chan
        .lock()
        .call(MsgType::Http, &raw, 1 << 20, 5_000_000_000)
        .unwrap();
    assert_eq!(r.status, Status::UpstreamUnavailable);
    assert!(r.payload.is_empty());
    let (_, log) = proxy.stop();
    assert!(log.contains("is not reachable now"), "{log}");
    assert!(
        log.contains("HTTP POST /kbs/v0/auth -> broker unavailable: connecting to"),
        "{log}"
    );
    assert!(log.contains("[UPSTREAM_UNAVAILABLE]"), "{log}");
    // Not a transport error of another kind.
    assert!(!matches!(e, KbsError::Refused { .. }));
}

#[test]
fn snp_reports_carry_the_image_measurement_and_verify_against_the_chain() {
    let env = Env::new();
    let mut args = env.args(&closed_url());
    args.extend(["--guest-policy".into(), "0x70000".into()]);
    let proxy = Proxy::start(&args);
    let guest = Guest::attach(&env.channel).unwrap();
    let mut transport = ChannelGuestRequest::new(&guest.chan);
    let mut m =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();

    let chain = common::chain();
    let anchor = TrustAnchor::from_file(&env.chain_dir.join("ark.pem")).unwrap();
    let vcek = verify_chain(
        &anchor,
        &Cert::from_der(Role::Ask, &chain.ask).unwrap(),
        &Cert::from_der(Role::Vcek, &chain.vcek).unwrap(),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let measurement = launch_digest(&common::image_elf()).unwrap();
    for i in 0..3u8 {
        let data = [0xA0 ^ i; 64];
        let report = m
            .request_report(&mut transport, &data, 0, KEY_SEL_DEFAULT)
            .unwrap();
        assert_eq!(report.report_data, data);
        assert_eq!(report.measurement, measurement);
        assert_eq!(report.policy.get(), 0x70000);
        assert_eq!(report.vmpl.get(), 0);
        verify_report(report.as_bytes(), &vcek).unwrap();
        // The extended request's certificate table: VCEK, ASK, ARK.
        let table = transport.take_cert_table();
        let entries = parse_cert_table(&table).unwrap();
        let kinds: Vec<CertKind> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [CertKind::Vcek, CertKind::Ask, CertKind::Ark]);
        assert_eq!(entries[0].data, &chain.vcek[..]);
        assert_eq!(entries[1].data, &chain.ask[..]);
        assert_eq!(entries[2].data, &chain.ark[..]);
    }

    // A request the simulated firmware refuses (sequence number reused)
    // comes back as a firmware error, not a channel failure.
    let mut stale =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let e = stale
        .request_report(&mut transport, &[0; 64], 0, KEY_SEL_DEFAULT)
        .unwrap_err();
    assert!(format!("{e:?}").contains("Transport"), "{e:?}");
    assert!(transport.last_error().is_none());
    let (_, log) = proxy.stop();
    assert!(
        log.contains("SNP_GUEST_REQUEST msg_type 5 seqno 1 vmpck 0 -> report signed"),
        "{log}"
    );
    assert!(log.contains("-> firmware error 4"), "{log}");
    assert!(
        log.contains(&svtpm_psp_sim::measure::to_hex(&measurement)),
        "{log}"
    );
}

#[test]
fn missing_or_wrong_inputs_are_clear_startup_errors() {
    let env = Env::new();
    let url = closed_url();
    let with = |i: usize, value: &str| {
        let mut a = env.args(&url);
        a[i] = value.into();
        a
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            with(11, "/no/such/image"),
            "reading the image /no/such/image",
        ),
        (
            with(9, "/no/secrets"),
            "reading the secrets page /no/secrets",
        ),
        (with(7, "/no/chain"), "loading the PSP chain from /no/chain"),
        (with(5, "https://kbs.example"), "TLS-terminating"),
        (with(5, "kbs.example:80"), "not an http:// URL"),
        (
            {
                let mut a = env.args(&url);
                a.extend(["--guest-policy".into(), "0x10000".into()]);
                a
            },
            "bit 17 is reserved",
        ),
        (
            {
                let mut a = env.args(&url);
                a.extend(["--fault".into(), "replay-attest=/no/body".into()]);
                a
            },
            "replay-attest: reading /no/body",
        ),
        (
            {
                let mut a = env.args(&url);
                a.extend(["--fault".into(), "unplug".into()]);
                a
            },
            "unknown fault",
        ),
    ];
    for (args, expected) in cases {
        let f = Proxy::refuses(&args);
        assert!(!f.status.success());
        assert!(
            f.stderr.contains(expected),
            "{expected:?} not in:\n{}",
            f.stderr
        );
    }
    // A channel file of another size.
    std::fs::write(&env.channel, [0u8; 8192]).unwrap();
    let f = Proxy::refuses(&env.args(&url));
    assert!(f.stderr.contains("is 8192 bytes"), "{}", f.stderr);
    // A secrets page that is not one.
    let env = Env::new();
    std::fs::write(&env.secrets, b"short").unwrap();
    let f = Proxy::refuses(&env.args(&url));
    assert!(
        f.stderr.contains("not a 4096-byte secrets page"),
        "{}",
        f.stderr
    );
}

#[test]
fn round_trip_latency() {
    let env = Env::new();
    let _proxy = Proxy::start(&env.args(&closed_url()));
    let guest = Guest::attach(&env.channel).unwrap();
    let mut slots = ChannelSlots::new(&guest.chan);
    let mut hot = Vec::new();
    for _ in 0..300 {
        let t = std::time::Instant::now();
        slots.read_slot(SlotId::B).unwrap();
        hot.push(t.elapsed());
    }
    hot.sort();
    let mut idle = Vec::new();
    for _ in 0..10 {
        // Long enough for the poll interval to reach its 2 ms maximum.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let t = std::time::Instant::now();
        slots.read_slot(SlotId::B).unwrap();
        idle.push(t.elapsed());
    }
    idle.sort();
    let p = |v: &[std::time::Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    eprintln!(
        "round trip (SLOT_READ of an empty slot): back to back p50 {:?} p90 {:?} p99 {:?}; \
         after 100 ms idle median {:?} max {:?}",
        p(&hot, 0.5),
        p(&hot, 0.9),
        p(&hot, 0.99),
        p(&idle, 0.5),
        idle[idle.len() - 1]
    );
    // Loose bounds: a shared two-core machine; the point is the order of
    // magnitude (tens of µs hot, about the 2 ms idle interval cold).
    assert!(p(&hot, 0.5) < std::time::Duration::from_millis(5));
    assert!(p(&idle, 0.5) < std::time::Duration::from_millis(20));
}
