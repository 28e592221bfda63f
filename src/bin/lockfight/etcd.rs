//! The etcd fighters (the `etcd` feature): the same [`Fighter`]s and
//! [`Tally`]s as the mio engine's, speaking etcd's native gRPC API through
//! `etcd-client` on a tokio runtime of their own.
//!
//! The workload is the one every target gets: each fighter picks one of
//! `--resources` names at random, locks it, and unlocks it once it holds
//! it. A lock is one transaction that puts the key, valued with the
//! fighter's ID and attached to its lease, if the key's create-revision is
//! 0 (it does not exist); the transaction's revision is the fencing token.
//! An unlock is one transaction that deletes the key if its value is the
//! fighter's ID, so a lock whose lease ran out and that another fighter
//! took is never released by the old holder (answered `NotOwner`, counted
//! as a lost hold, as the other targets do).
//!
//! Each fighter has its own client (its own HTTP/2 channel), on member
//! `i % members` of the target, with one request in flight: a gRPC channel
//! multiplexes calls but answers them in no set order, so there is no
//! pipelined mode here. Each fighter is granted one lease with TTL
//! `--expire` (whole seconds, at least 1; etcd raises a TTL below its own
//! minimum) before the window and keeps it alive on the same channel; its
//! locks reuse that lease rather than granting one per lock, so a lock is
//! one round trip as on the other targets. Lease grants, keep-alives and the
//! revocations after the window are never counted as requests.
//!
//! This module never decides what a fighter does next (that is
//! [`Fighter::on_reply`]) and never measures the server (that is the
//! window in `fight`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp,
};

use crate::fighter::{Fighter, Readiness, Rules, Tally};
use crate::wire::{Names, Op, Outcome};
use jackrabbit_dlm::rng::Rng;

/// How long the fighters' channels may take to open.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// Longest wait for one reply before it counts as an error, so a stuck
/// member fails requests instead of hanging the run.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// How long fighters may take to finish their cycles after the window (as
/// the engine allows).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Pause after a failed request, so a dead member is not hammered in a
/// tight loop.
const ERROR_DELAY: Duration = Duration::from_millis(10);

/// Everything an etcd run needs, read-only.
pub struct Plan<'a> {
    /// The members; fighter `i` talks to `endpoints[i % len]`.
    pub endpoints: &'a [SocketAddr],
    pub names: &'a Names,
    pub rules: Rules,
    /// One per connection (`--connections`).
    pub fighters: usize,
    /// Worker threads of the runtime (`--threads`).
    pub threads: usize,
    pub expire_secs: f64,
    pub duration: Duration,
    pub seed: u64,
    /// Makes the fighters' IDs unique to this run.
    pub nonce: &'a str,
}

/// What every fighter task shares.
struct Shared {
    locks: Vec<Box<[u8]>>,
    rules: Rules,
    deadline: Instant,
}

/// The TTL of the fighters' leases, in whole seconds (etcd's unit), from
/// `--expire`.
fn lease_ttl(expire_secs: f64) -> i64 {
    // A TTL in seconds from the command line (at most 86400): `as` cannot
    // cut it.
    #[allow(clippy::cast_possible_truncation)]
    let ttl = expire_secs.ceil() as i64;
    ttl.max(1)
}

/// A fighter with its channel and lease, ready to fight.
struct Armed {
    client: Client,
    lease: i64,
    fighter: Fighter,
    keeper: LeaseKeeper,
    replies: LeaseKeepAliveStream,
}

/// Runs the plan's fighters on a runtime of their own, meeting the window's
/// `barrier` once every channel is open and every lease granted, as the
/// engine's threads do; `failed` tells the window when that failed.
pub fn run(plan: &Plan<'_>, barrier: &Barrier, failed: &AtomicBool) -> Result<Tally, String> {
    let prepared = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
        .and_then(|runtime| {
            let armed = runtime.block_on(arm_all(plan))?;
            Ok((runtime, armed))
        });
    if prepared.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    let (runtime, armed) = prepared?;
    let shared = Arc::new(Shared {
        locks: plan.names.locks.clone(),
        rules: plan.rules.clone(),
        deadline: Instant::now() + plan.duration,
    });
    // A third of the TTL leaves two more renewals before a lease could end.
    let ttl = Duration::from_secs(lease_ttl(plan.expire_secs).unsigned_abs());
    let period = (ttl / 3).max(Duration::from_millis(500));
    runtime.block_on(fight_all(shared, armed, plan.rules.resources, period))
}

/// Opens every fighter's channel and grants its lease.
async fn arm_all(plan: &Plan<'_>) -> Result<Vec<Armed>, String> {
    if plan.endpoints.is_empty() {
        return Err("an etcd target needs a member".into());
    }
    let ttl = lease_ttl(plan.expire_secs);
    let mut armed = Vec::with_capacity(plan.fighters);
    for i in 0..plan.fighters {
        let member = plan.endpoints[i % plan.endpoints.len()];
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_LIMIT)
            .with_timeout(REQUEST_LIMIT);
        let mut client = Client::connect([format!("http://{member}")], Some(options))
            .await
            .map_err(|e| format!("cannot connect to etcd at {member}: {e}"))?;
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| format!("etcd at {member} granted no lease: {e}"))?
            .id();
        let (keeper, replies) = client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| format!("etcd at {member} keeps no lease alive: {e}"))?;
        let number = i as u64;
        let owner = format!("lf{}f{number}", plan.nonce)
            .into_bytes()
            .into_boxed_slice();
        let fighter = Fighter::new(owner, Rng::new(plan.seed, number), &plan.rules);
        armed.push(Armed {
            client,
            lease,
            fighter,
            keeper,
            replies,
        });
    }
    Ok(armed)
}

/// Fights with every armed fighter at once, then revokes their leases (which
/// deletes whatever locks are left) and merges their tallies.
async fn fight_all(
    shared: Arc<Shared>,
    armed: Vec<Armed>,
    resources: u32,
    period: Duration,
) -> Result<Tally, String> {
    let mut tasks = Vec::with_capacity(armed.len());
    let mut keepers = Vec::with_capacity(armed.len());
    for a in armed {
        keepers.push(tokio::spawn(keep_alive(a.keeper, a.replies, period)));
        tasks.push(tokio::spawn(fight_one(
            Arc::clone(&shared),
            a.client,
            a.lease,
            a.fighter,
            resources,
        )));
    }
    let mut tally = Tally::new(resources);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(mut one) => {
                tally.merge(&one.tally);
                // Outside the window: leftover locks go with their lease (a
                // failed revocation leaves them to their TTL, harmless).
                let _ = one.client.lease_revoke(one.lease).await;
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("an etcd fighter failed: {e}"));
            }
        }
    }
    for keeper in keepers {
        keeper.abort();
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(tally),
    }
}

/// What a fighter task hands back.
struct Finished {
    tally: Tally,
    client: Client,
    lease: i64,
}

/// Renews a lease every `period` until aborted; a renewal that fails ends
/// the renewals (the fighter then sees its locks lapse as lost holds).
async fn keep_alive(mut keeper: LeaseKeeper, mut replies: LeaseKeepAliveStream, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        if keeper.keep_alive().await.is_err() {
            return;
        }
        match replies.message().await {
            Ok(Some(_)) => {}
            _ => return,
        }
    }
}

/// One fighter's cycles, one request in flight, until the window closes and
/// its cycle is finished (or the drain limit passes).
async fn fight_one(
    shared: Arc<Shared>,
    mut client: Client,
    lease: i64,
    mut fighter: Fighter,
    resources: u32,
) -> Finished {
    let mut tally = Tally::new(resources);
    loop {
        let now = Instant::now();
        if now >= shared.deadline + DRAIN_LIMIT {
            tally.unfinished = true;
            break;
        }
        match fighter.ready(now, now >= shared.deadline) {
            Readiness::Done => break,
            Readiness::SleepsUntil(until) => {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            Readiness::Ready => {}
        }
        fighter.sending(&shared.rules);
        let key = &shared.locks[fighter.resource as usize];
        let sent = Instant::now();
        let reply = match fighter.next {
            Op::Lock => lock(&mut client, key, &fighter.owner, lease).await,
            Op::Unlock => unlock(&mut client, key, &fighter.owner).await,
            // Validation keeps --verify and shares away from etcd targets.
            other => Err(format!("the etcd fighters never send {other:?}")),
        };
        let now = Instant::now();
        let counting = now < shared.deadline;
        let outcome = match reply {
            Ok(outcome) => {
                if counting {
                    tally.requests += 1;
                    tally.latency.record(now - sent);
                }
                outcome
            }
            Err(why) => {
                if tally.first_failure.is_none() {
                    tally.first_failure = Some(why);
                }
                tokio::time::sleep(ERROR_DELAY).await;
                // Counted as an error by the fighter, which moves on.
                Outcome::Unexpected
            }
        };
        fighter.on_reply(outcome, &shared.rules, now, counting, &mut tally);
    }
    tally.per_fighter.push(fighter.acquired);
    Finished {
        tally,
        client,
        lease,
    }
}

/// Puts `key` = `owner` on `lease` if the key does not exist: `Locked`
/// with the transaction's revision as the token, else `NotOwner`.
async fn lock(
    client: &mut Client,
    key: &[u8],
    owner: &[u8],
    lease: i64,
) -> Result<Outcome, String> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            owner,
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let reply = client.txn(txn).await.map_err(|e| e.to_string())?;
    Ok(if reply.succeeded() {
        let token = reply
            .header()
            .and_then(|h| u64::try_from(h.revision()).ok());
        Outcome::Locked(token)
    } else {
        Outcome::NotOwner
    })
}

/// Deletes `key` if its value is `owner`: `Unlocked`, else `NotOwner`
/// (the lease ran out, and perhaps another fighter holds it now).
async fn unlock(client: &mut Client, key: &[u8], owner: &[u8]) -> Result<Outcome, String> {
    let txn = Txn::new()
        .when([Compare::value(key, CompareOp::Equal, owner)])
        .and_then([TxnOp::delete(key, None)]);
    let reply = client.txn(txn).await.map_err(|e| e.to_string())?;
    Ok(if reply.succeeded() {
        Outcome::Unlocked
    } else {
        Outcome::NotOwner
    })
}
