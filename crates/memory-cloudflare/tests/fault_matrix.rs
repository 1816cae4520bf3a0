//! The fault matrix (issue 7): for each kind of failure Cloudflare can throw at the backend
//! (429 storms with `retry-after`, 20% 5xx, connection resets, hangs beyond the request
//! timeout, a failing Vectorize upsert, a failing D1 write), a seeded mixed workload (store,
//! update, delete, get by hash, semantic search) runs against the emulator with that fault
//! injected. Then the faults are cleared and the run must show:
//!
//! * no acknowledged write lost: every store that returned `Ok` is there by hash with its
//!   content and tags, every acknowledged update is visible, every acknowledged delete stays
//!   deleted (and no read during the run contradicted an acknowledged write);
//! * no orphan after `repair`: `check` finds D1, Vectorize and R2 in agreement;
//! * every failure the caller saw has a clear message: non-empty, names the Cloudflare
//!   service, matches the fault (`429`, `503`, `could not reach`, `did not answer`, or the
//!   circuit breaker) and never holds the API token;
//! * the circuit breaker opens under a 100% storm of the same fault, rejects calls while
//!   open (naming the service), and closes again once the storm is over.
//!
//! Sizes: each row runs [`DEFAULT_OPS`] operations with seed 1 in CI. `cargo xtask soak`
//! raises them through `MCP_MEMORY_SOAK_OPS` (operations per row and seed) and
//! `MCP_MEMORY_SOAK_SEEDS` (seeds 1..=K, a fresh emulator each).
//!
//! Memories carry precomputed unit vectors, so only the few fixed search queries are
//! embedded (by the emulator's local stand-in model).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use cloudflare_emulator::{Fault, FaultRule};
use cloudflare_http::{
    ApiToken, BackoffConfig, BreakerConfig, BreakerHandle, BreakerState, ClientBuilder,
    ClientConfig, RetryConfig,
};
use common::{Setup, TestEnv, paths};
use memory_cloudflare::CloudflareStorage;
use memory_core::{ContentHash, Memory, Tags};
use memory_storage::{MemoryStorage, MemoryUpdate, StorageError, StoreOutcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Operations per row and seed in CI.
const DEFAULT_OPS: usize = 30;
/// Operations per row and seed (`cargo xtask soak` raises it).
const OPS_ENV: &str = "MCP_MEMORY_SOAK_OPS";
/// Seeds per row: 1..=K (`cargo xtask soak` raises it).
const SEEDS_ENV: &str = "MCP_MEMORY_SOAK_SEEDS";

/// Consecutive counted failures that open a breaker in these tests.
const BREAKER_THRESHOLD: u32 = 8;
/// How long a breaker stays open in these tests.
const BREAKER_OPEN_FOR: Duration = Duration::from_millis(150);
/// The request timeout of the hang row; hangs last [`HANG`].
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
/// How long an injected hang holds a request (the emulator's smallest hang).
const HANG: Duration = Duration::from_secs(1);
/// The request timeout of every other row.
const LONG_TIMEOUT: Duration = Duration::from_secs(20);

/// The fixed search queries (embedded once per store and cached).
const QUERIES: [&str; 4] = [
    "what did we decide about the database",
    "notes about the release schedule",
    "the failover runbook",
    "customer feedback on search",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Two retries with millisecond backoff, a 500 ms budget (so a `retry-after: 1` is not
/// waited out: the call fails at once, saying 429), and a quick breaker.
fn quick_client(config: &mut ClientConfig, timeout: Duration) {
    config.request_timeout = timeout;
    config.retry = RetryConfig {
        max_retries: 2,
        backoff: BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(5), 2.0)
            .unwrap_or_else(|e| panic!("backoff: {e}")),
        total_budget: Duration::from_millis(500),
    };
    config.breaker = Some(
        BreakerConfig::new("cloudflare", BREAKER_THRESHOLD, BREAKER_OPEN_FOR, 1)
            .unwrap_or_else(|e| panic!("breaker config: {e}")),
    );
}

fn quick_long_timeout(config: &mut ClientConfig) {
    quick_client(config, LONG_TIMEOUT);
}

fn quick_short_timeout(config: &mut ClientConfig) {
    quick_client(config, SHORT_TIMEOUT);
}

/// One row of the matrix.
#[derive(Debug, Clone)]
struct Profile {
    /// Row name, for messages.
    name: &'static str,
    /// Rules in force for the whole workload.
    rules: Vec<FaultRule>,
    /// A rule added again every `n` operations (the `fail_next` rows).
    rearm: Option<(usize, FaultRule)>,
    /// The 100% storm of the breaker phase, and the service it hits.
    storm: FaultRule,
    /// `"d1"` or `"vectorize"`.
    storm_service: &'static str,
    /// Each error message must contain one of these (case-insensitive), or name the circuit
    /// breaker.
    expect: &'static [&'static str],
    /// Writes that failed may still land later (hangs: the emulator answers after the
    /// client gave up), so a hash with a failed write is not touched again.
    late_writes: bool,
    /// The client settings.
    client: fn(&mut ClientConfig),
    /// Only clean-up behind D1 fails (issue 12, items 6 and 7): every delete of a live
    /// memory must be acknowledged, and some must report their clean-up as pending.
    deletes_always_land: bool,
}

fn error_rule(path: &str, status: u16, rate: f64, retry_after: u64) -> FaultRule {
    FaultRule::new(
        path,
        Fault::Error {
            status,
            rate,
            retry_after,
        },
    )
}

fn profile_429() -> Profile {
    Profile {
        name: "429 storm with retry-after",
        // `retry-after: 0`: retried at once, so most calls get through after a retry.
        rules: vec![error_rule("", 429, 0.3, 0)],
        rearm: None,
        // `retry-after: 1` is beyond the retry budget: each call fails at once.
        storm: error_rule(paths::D1, 429, 1.0, 1),
        storm_service: "d1",
        expect: &["429", "throttling"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: false,
    }
}

fn profile_5xx() -> Profile {
    Profile {
        name: "20% 500/503",
        rules: vec![
            FaultRule::error("", 500, 0.1),
            FaultRule::error("", 503, 0.11),
        ],
        rearm: None,
        storm: FaultRule::error(paths::D1, 503, 1.0),
        storm_service: "d1",
        expect: &["500", "503"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: false,
    }
}

fn profile_reset() -> Profile {
    Profile {
        name: "connection resets",
        rules: vec![FaultRule::reset("", 0.2)],
        rearm: None,
        storm: FaultRule::reset(paths::D1, 1.0),
        storm_service: "d1",
        expect: &["could not reach"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: false,
    }
}

fn profile_hang() -> Profile {
    Profile {
        name: "hangs beyond the request timeout",
        rules: vec![FaultRule::hang("", 0.1, HANG)],
        rearm: None,
        storm: FaultRule::hang(paths::D1, 1.0, HANG),
        storm_service: "d1",
        expect: &["did not answer within"],
        late_writes: true,
        client: quick_short_timeout,
        deletes_always_land: false,
    }
}

fn profile_vectorize_upsert() -> Profile {
    Profile {
        name: "Vectorize upsert failing",
        rules: Vec::new(),
        // Three failures in a row: more than the client's two retries of this idempotent call.
        rearm: Some((5, FaultRule::fail_next(paths::VECTORIZE_UPSERT, 3, 503))),
        storm: FaultRule::error(paths::VECTORIZE, 503, 1.0),
        storm_service: "vectorize",
        expect: &["503"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: false,
    }
}

fn profile_d1_write() -> Profile {
    Profile {
        name: "D1 write failing",
        rules: Vec::new(),
        // Three failures in a row, so a retried (idempotent) read cannot absorb them all
        // and the next write fails too.
        rearm: Some((
            5,
            FaultRule::fail_next(paths::D1, 3, 500).with_method("POST"),
        )),
        storm: FaultRule::error(paths::D1, 500, 1.0).with_method("POST"),
        storm_service: "d1",
        expect: &["500"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: false,
    }
}

fn profile_vectorize_delete() -> Profile {
    Profile {
        name: "Vectorize delete failing",
        rules: Vec::new(),
        // Three failures in a row: more than the client's two retries of this idempotent call,
        // so the delete that meets them leaves its vector behind.
        rearm: Some((4, FaultRule::fail_next("/delete_by_ids", 3, 503))),
        storm: FaultRule::error(paths::VECTORIZE, 503, 1.0),
        storm_service: "vectorize",
        expect: &["503"],
        late_writes: false,
        client: quick_long_timeout,
        deletes_always_land: true,
    }
}

/// What the workload knows about one memory of its pool.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Never stored, or deleted with an acknowledgement.
    Absent,
    /// Stored (or updated) with an acknowledgement; the tags when known.
    Live(Option<Vec<String>>),
    /// A write on it failed: it may or may not have happened.
    Unknown,
}

/// What a workload did and saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Operations run.
    ops: usize,
    /// Acknowledged writes (stores, updates, deletes that returned `Ok`).
    acknowledged_writes: usize,
    /// Every error the caller saw that was not a normal answer (`NotFound`),
    /// as `operation: message`.
    errors: Vec<(&'static str, String)>,
    /// Reads or answers that contradicted an acknowledged write.
    violations: Vec<String>,
    /// The model at the end.
    known: Vec<Known>,
    /// Memories whose fate is unknown at the end.
    unknown: usize,
    /// Acknowledged writes found missing or wrong after the faults were cleared.
    lost: Vec<String>,
    /// What `repair` fixed after the run.
    repaired: u64,
    /// Acknowledged deletes that reported clean-up still pending.
    pending_cleanups: usize,
}

impl Outcome {
    fn summary(&self, row: &str, seed: u64) -> String {
        let mut by_op: BTreeMap<&str, usize> = BTreeMap::new();
        for (op, _) in &self.errors {
            *by_op.entry(op).or_default() += 1;
        }
        format!(
            "[fault-matrix] row={row:?} seed={seed} ops={} acknowledged_writes={} errors={} \
             {by_op:?} unknown_at_end={} pending_cleanups={} repaired={} lost={} violations={}",
            self.ops,
            self.acknowledged_writes,
            self.errors.len(),
            self.unknown,
            self.pending_cleanups,
            self.repaired,
            self.lost.len(),
            self.violations.len()
        )
    }
}

/// A deterministic unit vector.
fn unit_vector(rng: &mut StdRng) -> Vec<f32> {
    let raw: Vec<f32> = (0..common::MODEL.dimensions())
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    raw.iter().map(|x| x / norm).collect()
}

fn tags(list: &[String]) -> Tags {
    Tags::parse(list.to_vec()).unwrap_or_else(|e| panic!("tags: {e}"))
}

/// The pool of memories a workload draws from: content, original tags, vector.
fn pool(size: usize, seed: u64) -> Vec<Memory> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_f00d);
    let topics = ["database", "release", "failover", "search", "billing"];
    (0..size)
        .map(|i| {
            let content = format!(
                "Fault matrix seed {seed} memory {i}: a note about the {} (#{}).",
                topics[i % topics.len()],
                rng.random::<u32>()
            );
            Memory::new(content)
                .unwrap_or_else(|e| panic!("memory: {e}"))
                .with_tags(tags(&[
                    format!("topic-{}", i % topics.len()),
                    "matrix".into(),
                ]))
                .with_embedding(unit_vector(&mut rng))
        })
        .collect()
}

fn tag_list(m: &Memory) -> Vec<String> {
    m.tags.as_slice().to_vec()
}

/// Runs `ops` seeded operations on `store` with `profile`'s faults in force on `env`,
/// recording what was acknowledged and every error seen, then clears the faults.
async fn run_workload(
    env: &TestEnv,
    store: &CloudflareStorage,
    profile: &Profile,
    ops: usize,
    seed: u64,
) -> Outcome {
    let memories = pool((ops / 3).max(8), seed);
    let mut known = vec![Known::Absent; memories.len()];
    let mut quarantined = vec![false; memories.len()];
    let mut out = Outcome::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let index = |hash: &ContentHash| memories.iter().position(|m| m.content_hash() == hash);
    for rule in &profile.rules {
        env.fault(rule.clone());
    }
    for op in 0..ops {
        if let Some((every, rule)) = &profile.rearm
            && op % every == 0
        {
            env.fault(rule.clone());
        }
        let eligible: Vec<usize> = (0..memories.len()).filter(|i| !quarantined[*i]).collect();
        let Some(&i) = eligible.get(rng.random_range(0..eligible.len().max(1))) else {
            break;
        };
        let m = &memories[i];
        let hash = m.content_hash();
        let roll = rng.random_range(0..100);
        out.ops += 1;
        let mut failed_write = false;
        if roll < 35 {
            match store.store(m.clone()).await {
                Ok(StoreOutcome::Stored | StoreOutcome::Revived) => {
                    if let Known::Live(_) = known[i] {
                        out.violations.push(format!(
                            "op {op}: store of {hash} succeeded, but it was live (acknowledged)"
                        ));
                    }
                    known[i] = Known::Live(Some(tag_list(m)));
                    out.acknowledged_writes += 1;
                }
                Ok(StoreOutcome::Duplicate) => {
                    if known[i] == Known::Absent {
                        out.violations.push(format!(
                            "op {op}: store of {hash} says duplicate, but it was absent \
                             (an acknowledged delete was lost, or a failed store landed)"
                        ));
                    }
                    if !matches!(known[i], Known::Live(_)) {
                        known[i] = Known::Live(None);
                    }
                }
                Err(e) => {
                    out.errors.push(("store", e.to_string()));
                    known[i] = Known::Unknown;
                    failed_write = true;
                }
            }
        } else if roll < 55 {
            let new_tags = vec![format!("updated-{op}"), "matrix".to_owned()];
            let update = MemoryUpdate {
                tags: Some(tags(&new_tags)),
                ..MemoryUpdate::default()
            };
            match store.update_memory_metadata(hash, update, true).await {
                Ok(updated) => {
                    if known[i] == Known::Absent {
                        out.violations.push(format!(
                            "op {op}: update of {hash} succeeded, but it was absent"
                        ));
                    }
                    if tag_list(&updated) != new_tags {
                        out.violations.push(format!(
                            "op {op}: update of {hash} returned tags {:?}, not {new_tags:?}",
                            tag_list(&updated)
                        ));
                    }
                    known[i] = Known::Live(Some(new_tags));
                    out.acknowledged_writes += 1;
                }
                Err(StorageError::NotFound { .. }) => {
                    if let Known::Live(_) = known[i] {
                        out.violations.push(format!(
                            "op {op}: update of {hash} says not found, but it was live"
                        ));
                    }
                    known[i] = Known::Absent;
                }
                Err(e) => {
                    out.errors.push(("update", e.to_string()));
                    known[i] = Known::Unknown;
                    failed_write = true;
                }
            }
        } else if roll < 70 {
            match store.delete(hash).await {
                Ok(report) => {
                    if !report.cleanup_pending.is_empty() {
                        out.pending_cleanups += 1;
                    }
                    if known[i] == Known::Absent {
                        out.violations.push(format!(
                            "op {op}: delete of {hash} succeeded, but it was absent"
                        ));
                    }
                    known[i] = Known::Absent;
                    out.acknowledged_writes += 1;
                }
                Err(StorageError::NotFound { .. }) => {
                    if let Known::Live(_) = known[i] {
                        out.violations.push(format!(
                            "op {op}: delete of {hash} says not found, but it was live"
                        ));
                    }
                    known[i] = Known::Absent;
                }
                Err(e) => {
                    out.errors.push(("delete", e.to_string()));
                    known[i] = Known::Unknown;
                    failed_write = true;
                }
            }
        } else if roll < 85 {
            match store.get_by_hash(hash).await {
                Ok(found) => {
                    if let Some(v) = contradiction(&known[i], m, found.as_ref()) {
                        out.violations.push(format!("op {op}: get_by_hash: {v}"));
                    }
                }
                Err(e) => out.errors.push(("get_by_hash", e.to_string())),
            }
        } else {
            let query = QUERIES[rng.random_range(0..QUERIES.len())];
            match store.retrieve(query, 5).await {
                Ok(hits) => {
                    for hit in hits {
                        let hash = hit.memory.content_hash();
                        if let Some(j) = index(hash)
                            && known[j] == Known::Absent
                        {
                            out.violations.push(format!(
                                "op {op}: search returned {hash}, deleted with an acknowledgement"
                            ));
                        }
                    }
                }
                Err(e) => out.errors.push(("retrieve", e.to_string())),
            }
        }
        if failed_write && profile.late_writes {
            quarantined[i] = true;
        }
    }
    env.emulator.faults().clear();
    out.unknown = known.iter().filter(|k| **k == Known::Unknown).count();
    out.known = known;
    out
}

/// Why `found` contradicts what the workload knows of `m`, if it does.
fn contradiction(known: &Known, m: &Memory, found: Option<&Memory>) -> Option<String> {
    let hash = m.content_hash();
    match (known, found) {
        (Known::Absent, Some(_)) => Some(format!(
            "{hash} is there, but it was deleted or never stored"
        )),
        (Known::Live(_), None) => {
            Some(format!("{hash} is missing, but its write was acknowledged"))
        }
        (Known::Live(tags), Some(got)) => {
            if got.content() != m.content() {
                Some(format!("{hash} has content {:?}", got.content()))
            } else if let Some(tags) = tags
                && &tag_list(got) != tags
            {
                Some(format!(
                    "{hash} has tags {:?}, acknowledged {tags:?}",
                    tag_list(got)
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A client without faults' settings (long timeout, retries, no breaker) and a store over
/// it: the independent eye that checks what the faulty run left behind.
async fn calm_store(env: &TestEnv) -> CloudflareStorage {
    let mut config = ClientConfig::new(
        env.client.account_id(),
        ApiToken::new(env.emulator.config().tokens[0].clone()),
    )
    .with_base_url(
        env.emulator
            .base_url()
            .parse()
            .unwrap_or_else(|e| panic!("base URL: {e}")),
    );
    config.rate_limit = None;
    config.breaker = None;
    config.request_timeout = Duration::from_secs(60);
    let client = ClientBuilder::new(config)
        .build()
        .unwrap_or_else(|e| panic!("calm client: {e}"));
    let store = CloudflareStorage::connect_with_client(&env.config(), &client)
        .unwrap_or_else(|e| panic!("calm store: {e}"));
    store
        .initialize()
        .await
        .unwrap_or_else(|e| panic!("initialise: {e}"));
    store
}

/// After the run: `repair`, then `check` must find nothing, and every acknowledged write
/// must be there (read through a client that saw no faults).
async fn verify(calm: &CloudflareStorage, memories: &[Memory], out: &mut Outcome) {
    let repaired = calm
        .repair()
        .await
        .unwrap_or_else(|e| panic!("repair after the run: {e}"));
    out.repaired = repaired.fixed();
    let report = calm
        .check()
        .await
        .unwrap_or_else(|e| panic!("check after repair: {e}"));
    assert!(
        report.is_consistent(),
        "orphans left after repair: {report:?}"
    );
    for (m, known) in memories.iter().zip(&out.known) {
        let found = calm
            .get_by_hash(m.content_hash())
            .await
            .unwrap_or_else(|e| panic!("get_by_hash after the run: {e}"));
        if let Some(v) = contradiction(known, m, found.as_ref()) {
            out.lost.push(v);
        }
    }
}

/// Checks one error message against the row's expectations; returns why it is unclear.
fn unclear(message: &str, profile: &Profile, token: &str) -> Option<String> {
    let lower = message.to_lowercase();
    if message.trim().is_empty() {
        return Some("empty message".into());
    }
    if message.contains(token) {
        return Some("the message holds the API token".into());
    }
    let names_service = ["d1", "vectorize", "r2", "workers ai", "embed"]
        .iter()
        .any(|s| lower.contains(s));
    if !names_service {
        return Some("names no Cloudflare service".into());
    }
    let fits = lower.contains("circuit breaker")
        || profile
            .expect
            .iter()
            .any(|p| lower.contains(&p.to_lowercase()));
    if !fits {
        return Some(format!("matches none of {:?}", profile.expect));
    }
    None
}

/// The breaker phase: a 100% storm of the row's fault on one service opens that service's
/// breaker within the configured threshold; while open, calls fail at once naming the
/// service; after the storm and `open_for`, a call goes through and the breaker closes.
async fn breaker_phase(
    env: &TestEnv,
    store: &CloudflareStorage,
    profile: &Profile,
    probe: &Memory,
) {
    let breaker: BreakerHandle = env
        .client
        .service(profile.storm_service)
        .breaker()
        .cloned()
        .unwrap_or_else(|| panic!("breakers are on"));
    let call = || async {
        match profile.storm_service {
            "vectorize" => store.retrieve(QUERIES[0], 3).await.map(|_| ()),
            _ => store.get_by_hash(probe.content_hash()).await.map(|_| ()),
        }
    };
    // A breaker the workload opened is half-open by now: one call closes it.
    call()
        .await
        .unwrap_or_else(|e| panic!("{}: before the storm: {e}", profile.name));
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "{}: the breaker is closed before the storm",
        profile.name
    );
    let opened_before = breaker.opened_count();
    let storm = env.fault(profile.storm.clone());
    let token = env.emulator.config().tokens[0].clone();
    let mut calls = 0;
    while !matches!(breaker.state(), BreakerState::Open { .. }) {
        calls += 1;
        assert!(
            calls <= BREAKER_THRESHOLD,
            "{}: the breaker did not open after {calls} calls under a 100% storm",
            profile.name
        );
        let err = call().await.expect_err("the storm fails every call");
        let message = err.to_string();
        assert!(
            unclear(&message, profile, &token).is_none(),
            "{}: unclear storm error: {message}",
            profile.name
        );
    }
    assert_eq!(breaker.opened_count(), opened_before + 1);
    let rejected = breaker.rejected_count();
    let err = call().await.expect_err("the breaker is open");
    let message = err.to_string();
    assert!(
        message.contains("circuit breaker") && message.contains(profile.storm_service),
        "{}: the open breaker's error names itself and the service: {message}",
        profile.name
    );
    assert!(err.is_transient(), "{err:?}");
    assert!(breaker.rejected_count() > rejected);

    assert!(env.emulator.faults().remove(storm));
    tokio::time::sleep(BREAKER_OPEN_FOR + Duration::from_millis(50)).await;
    call()
        .await
        .unwrap_or_else(|e| panic!("{}: the storm is over: {e}", profile.name));
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "{}: the breaker closes after a successful probe",
        profile.name
    );
}

/// One row: for each seed, a fresh emulator, the workload, the checks, the breaker phase.
async fn run_row(profile: Profile) {
    let ops = env_usize(OPS_ENV, DEFAULT_OPS);
    let seeds = env_usize(SEEDS_ENV, 1);
    for seed in 1..=seeds as u64 {
        let env = TestEnv::start(Setup::direct().with_client(profile.client)).await;
        let token = env.emulator.config().tokens[0].clone();
        let calm = calm_store(&env).await;
        // Loads the emulator's model before any short timeout is in force.
        calm.retrieve(QUERIES[0], 1)
            .await
            .unwrap_or_else(|e| panic!("warming the model: {e}"));
        let store = env.storage().await;

        let mut out = run_workload(&env, &store, &profile, ops, seed).await;
        if profile.late_writes {
            // Requests held by a hang are answered (and applied) when it ends.
            tokio::time::sleep(HANG + Duration::from_millis(500)).await;
        }
        let memories = pool((ops / 3).max(8), seed);
        verify(&calm, &memories, &mut out).await;
        eprintln!("{}", out.summary(profile.name, seed));

        let mut report = String::new();
        for (op, message) in &out.errors {
            if let Some(why) = unclear(message, &profile, &token) {
                let _ = writeln!(report, "  {op}: {why}: {message}");
            }
        }
        assert!(
            report.is_empty(),
            "{} (seed {seed}): unclear errors:\n{report}",
            profile.name
        );
        assert!(
            out.violations.is_empty(),
            "{} (seed {seed}): answers contradicted acknowledged writes:\n{}",
            profile.name,
            out.violations.join("\n")
        );
        assert!(
            out.lost.is_empty(),
            "{} (seed {seed}): acknowledged writes lost:\n{}",
            profile.name,
            out.lost.join("\n")
        );
        assert!(
            out.acknowledged_writes > 0,
            "{} (seed {seed}): nothing was acknowledged, so nothing was tested",
            profile.name
        );
        if profile.deletes_always_land {
            let failed: Vec<&String> = out
                .errors
                .iter()
                .filter(|(op, _)| *op == "delete")
                .map(|(_, m)| m)
                .collect();
            assert!(
                failed.is_empty(),
                "{} (seed {seed}): a delete whose D1 write landed must be acknowledged: {failed:?}",
                profile.name
            );
            assert!(
                out.pending_cleanups > 0 && out.repaired > 0,
                "{} (seed {seed}): no delete met the fault ({} pending, {} repaired), so \
                 nothing was tested",
                profile.name,
                out.pending_cleanups,
                out.repaired
            );
        }

        // The faults are gone and `open_for` has passed: no breaker is still open.
        tokio::time::sleep(BREAKER_OPEN_FOR + Duration::from_millis(50)).await;
        for b in env.client.breakers() {
            assert!(
                !matches!(b.state(), BreakerState::Open { .. }),
                "{}: breaker {} still open after the faults ended",
                profile.name,
                b.config().name()
            );
        }
        let probe = &memories[0];
        breaker_phase(&env, &store, &profile, probe).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_retry_after_loses_no_acknowledged_write() {
    run_row(profile_429()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_5xx_loses_no_acknowledged_write() {
    run_row(profile_5xx()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_lose_no_acknowledged_write() {
    run_row(profile_reset()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangs_beyond_the_timeout_lose_no_acknowledged_write() {
    run_row(profile_hang()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_vectorize_upsert_loses_no_acknowledged_write() {
    run_row(profile_vectorize_upsert()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_d1_write_loses_no_acknowledged_write() {
    run_row(profile_d1_write()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_vectorize_delete_loses_no_acknowledged_delete() {
    run_row(profile_vectorize_delete()).await;
}
