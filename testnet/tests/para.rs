//! Interop with a miner nobody here wrote: `para miner` (crates.io `para`, a Stratum V1 CPU
//! miner with version rolling) mines through the agent's proxy to a testnet endpoint; its shares
//! are accepted upstream and counted per worker. `testnet/install-para` builds it once per
//! machine into the tools cache outside the clone (about 11 minutes the first time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashmesh_agent::proxy::config::{Login, StratumConfig};
use hashmesh_agent::proxy::driver;
use hashmesh_plane::core::agent::AppliedRoute;
use hashmesh_protocol::{DirectiveId, EndpointId, GroupId, RouteTarget};
use hashmesh_testnet::endpoint::{Endpoint, EndpointSettings};

/// para wants `<bitcoin address>.<worker>`; the agent maps the address to a miner group.
const ADDRESS: &str = "bc1q8jx6g9ujlqmdx3jnt3ap6ll2fdwqjdkdgs959m";

fn para() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install-para");
    let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run testnet/install-para");
    assert!(out.status.success(), "installing para failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Kills the miner however the test ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn para_mines_through_the_agent() {
    let para = para();
    let ep = Endpoint::start(EndpointSettings {
        name: "pool-a/ep-1".into(),
        stratum: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
        difficulty: 1.0 / 65_536.0,
        job_ms: 2_000,
        jobs_per_block: 3,
    })
    .await
    .unwrap();
    let group: GroupId = "pool-a/g-1".parse().unwrap();
    let endpoint: EndpointId = "pool-a/ep-1".parse().unwrap();
    let cfg = StratumConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        group_listeners: BTreeMap::new(),
        endpoints: [(endpoint.clone(), ep.stratum)].into_iter().collect(),
        login: Login { user: "pool-a.agent-1".into(), password: "x".into() },
        logins: BTreeMap::new(),
        standby: Vec::new(),
        groups: [group.clone()].into_iter().collect(),
        worker_groups: [(ADDRESS.to_owned(), group.clone())].into_iter().collect(),
        fail_back_ms: 1_000,
        start_difficulty: 1.0,
        metrics_listen: None,
        partial_line_ms: hashmesh_agent::proxy::driver::PARTIAL_LINE_MS_DEFAULT,
        workers_max: 100,
        worker_metrics: true,
    };
    let proxy = driver::start(&cfg, cfg.proxy_config(), None).await.unwrap();
    let route = AppliedRoute {
        directive: DirectiveId([1; 32]),
        height: 1,
        targets: vec![RouteTarget { endpoint, weight_bp: 10_000 }],
        applied_at_ms: 0,
        seq: 1,
        credentials: Vec::new(),
        drained: Vec::new(),
    };
    proxy.routes([(group, route)].into_iter().collect()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let worker = format!("{ADDRESS}.rig1");
    let child = Command::new(&para)
        .args(["miner", &proxy.listening[0].to_string(), "--username", &worker, "--password", "x"])
        .args(["--cpu-cores", "1", "--throttle", "200K"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start para");
    let mut child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let counted = loop {
        let s = proxy.status().await.unwrap();
        let w = s.workers.get(&worker).copied().unwrap_or_default().totals;
        if w.accepted >= 5 {
            break w;
        }
        if Instant::now() > deadline || child.0.try_wait().unwrap().is_some() {
            let _ = child.0.kill();
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!(
                "para's shares were not accepted through the agent: {w:?}\n{}\n{err}",
                serde_json::to_string_pretty(&s).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(child);
    assert_eq!(counted.rejected, 0, "para's valid shares are never refused: {counted:?}");
    let books = ep.status().workers;
    assert!(books.get("pool-a.agent-1").is_some_and(|b| b.accepted >= 5), "upstream counts: {books:?}");
}
