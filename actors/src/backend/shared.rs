//! What both back ends share beyond the connection: why a start failed, starts that a removal
//! can cancel, removals a batch at a time, the one-at-a-time inventory loop, label filters, the
//! users' networks, and the read-only mounts of data sets.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::models::{Mount, MountBindOptions, MountType, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;
use bollard::Docker;

use actix::Recipient;
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::client::{lock, CallError, Client};
use super::{LABEL_DEPLOYMENT, LABEL_OWNER};
use crate::protocol::{BackendEvent, DatasetMount, StartExecution, StartedContainer};

/// Where a back end's events go. The outcomes of starts and removals are counted: an inventory
/// taken while one was sent may contradict it, and is taken again.
pub(crate) struct Outbox {
    events: Recipient<BackendEvent>,
    completions: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(events: Recipient<BackendEvent>) -> Outbox {
        Outbox { events, completions: AtomicU64::new(0) }
    }

    pub(crate) fn send(&self, event: BackendEvent) {
        self.events.do_send(event);
    }

    /// Sends the outcome of a start or a removal, which an inventory taken meanwhile must not
    /// contradict.
    pub(crate) fn send_outcome(&self, event: BackendEvent) {
        self.completions.fetch_add(1, Ordering::SeqCst);
        self.send(event);
    }

    /// How many outcomes were sent so far.
    pub(crate) fn completions(&self) -> u64 {
        self.completions.load(Ordering::SeqCst)
    }
}

/// Why a start failed, and whether it may work later.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// Docker was too slow or out of reach.
    pub(crate) transient: bool,
}

impl Failure {
    /// A failed engine call, described in the context of what was being done.
    pub(crate) fn call(e: CallError, context: impl FnOnce(&CallError) -> String) -> Failure {
        Failure { transient: e.is_transient(), message: context(&e) }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, transient: false }
    }
}

/// The outcome event of a start: `ExecutionStarted` (`InstancesStarted` for a grow), or, after
/// `clean_up` removed what the start made, `ExecutionStartFailed` (`InstancesStartFailed`),
/// saying so when cleaning up failed too.
async fn start_outcome<F: Future<Output = Result<(), String>>>(
    msg: &StartExecution,
    outcome: Result<Vec<StartedContainer>, Failure>,
    clean_up: impl FnOnce() -> F,
) -> BackendEvent {
    let execution_id = msg.execution_id;
    match outcome {
        Ok(containers) if msg.grow => {
            info!(execution_id, containers = containers.len(), "execution grown");
            BackendEvent::InstancesStarted { execution_id, containers }
        }
        Ok(containers) => {
            info!(execution_id, "execution started");
            BackendEvent::ExecutionStarted { execution_id, containers }
        }
        Err(failure) => {
            warn!(execution_id, grow = msg.grow, error = failure.message, "execution failed to start");
            let error = match clean_up().await {
                Ok(()) => failure.message,
                Err(cleanup) => format!("{} (and cleaning up failed: {cleanup})", failure.message),
            };
            let transient = failure.transient;
            if msg.grow {
                let service_ids = msg.containers.iter().map(|c| c.service_id).collect();
                BackendEvent::InstancesStartFailed { execution_id, service_ids, error, transient }
            } else {
                BackendEvent::ExecutionStartFailed { execution_id, error, transient }
            }
        }
    }
}

/// A start under way, which a removal of the same execution can cancel and wait for.
#[derive(Default)]
pub(crate) struct StartControl {
    cancelled: AtomicBool,
    /// Held by the start until it has cleaned up after itself.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl StartControl {
    /// Whether a removal asked this start to give up.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The starts under way, by execution id.
#[derive(Default)]
pub(crate) struct Starts {
    map: Mutex<HashMap<u64, Arc<StartControl>>>,
}

/// A start registered with [`Starts::begin`]; a removal waits until it is dropped, which the
/// start does only after [`Starts::end`], once it has cleaned up after itself.
pub(crate) struct Running {
    pub(crate) control: Arc<StartControl>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Starts {
    /// A start of `msg`, from beginning to end, as every back end makes it: registered (a removal
    /// can cancel it, and waits for it), `try_start` starts its containers and notes what it made
    /// in `made`; after a failure `clean_up` removes what was made; then it leaves the starts
    /// under way, and its outcome (see [`start_outcome`]) is sent.
    pub(crate) async fn run<M>(
        &self,
        msg: &StartExecution,
        outbox: &Outbox,
        mut made: M,
        try_start: impl AsyncFnOnce(&StartControl, &mut M) -> Result<Vec<StartedContainer>, Failure>,
        clean_up: impl AsyncFnOnce(&M) -> Result<(), String>,
    ) {
        let running = self.begin(msg.execution_id).await;
        let outcome = try_start(&running.control, &mut made).await;
        let event = start_outcome(msg, outcome, || clean_up(&made)).await;
        self.finish(msg.execution_id, running, outbox, event);
    }

    async fn begin(&self, execution_id: u64) -> Running {
        let control = Arc::new(StartControl::default());
        let guard = control.running.clone().lock_owned().await;
        lock(&self.map).insert(execution_id, control.clone());
        Running { control, _guard: guard }
    }

    fn end(&self, execution_id: u64) {
        lock(&self.map).remove(&execution_id);
    }

    /// A start of `execution_id` is over, cleaned up after: it leaves the starts under way, a
    /// removal waiting for it goes on, and its outcome `event` is sent.
    fn finish(&self, execution_id: u64, running: Running, outbox: &Outbox, event: BackendEvent) {
        self.end(execution_id);
        drop(running);
        outbox.send_outcome(event);
    }

    /// Cancels the start of an execution, if one is under way, and waits until it has cleaned
    /// up after itself: nothing of it is created after this returns.
    pub(crate) async fn cancel(&self, execution_id: u64) {
        let control = lock(&self.map).get(&execution_id).cloned();
        if let Some(control) = control {
            info!(execution_id, "cancelling the start under way");
            control.cancelled.store(true, Ordering::SeqCst);
            let _ = control.running.lock().await;
        }
    }
}

/// Containers or services removed (stopped) at once by one removal or clean-up pass.
const REMOVE_BATCH: usize = 8;

/// Runs `each` on every target, `REMOVE_BATCH` at a time; their results, in the order they end.
pub(crate) async fn in_batches<T, F: Future>(
    targets: impl IntoIterator<Item = T>,
    each: impl FnMut(T) -> F,
) -> Vec<F::Output> {
    futures_util::stream::iter(targets).map(each).buffer_unordered(REMOVE_BATCH).collect().await
}

/// Removes orphans, the containers or services Zoe does not know (`kind` says which, in the
/// log), with `remove`, a batch at a time; each outcome is logged.
pub(crate) async fn remove_orphans<F, E>(
    client: &Client,
    kind: &str,
    names: Vec<String>,
    remove: impl Fn(Docker, String) -> F,
) where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let docker = match client.ready().await {
        Ok(d) => d,
        Err(e) => return warn!(error = %e, "cannot remove orphan {kind}s"),
    };
    let results = in_batches(names, |name| {
        let removal = remove(docker.clone(), name.clone());
        async move { (name, removal.await) }
    })
    .await;
    for (name, result) in results {
        match result {
            Ok(()) => info!(name, "removed orphan {kind}"),
            Err(e) => warn!(name, error = %e, "cannot remove orphan {kind}"),
        }
    }
}

/// How many times an inventory is taken again while starts and removals end meanwhile.
const INVENTORY_ATTEMPTS: usize = 10;

/// Takes an inventory with `take`, once Docker is reached, and takes it again while a start or
/// removal reports its outcome meanwhile (an inventory must not be older than an outcome sent
/// before it: a list taken while a start was creating containers, delivered after that start's
/// outcome, would show as missing what exists), `INVENTORY_ATTEMPTS` times at the most. `None`
/// when Docker or `take` failed, or outcomes kept coming (the next inventory will do).
pub(crate) async fn consistent_inventory<T>(
    client: &Client,
    outbox: &Outbox,
    mut take: impl AsyncFnMut(&Docker) -> Option<T>,
) -> Option<(Docker, T)> {
    let docker = match client.ready().await {
        Ok(d) => d,
        Err(e) => {
            debug!(error = %e, "inventory skipped");
            return None;
        }
    };
    for _ in 0..INVENTORY_ATTEMPTS {
        let completions = outbox.completions();
        let inventory = take(&docker).await?;
        if outbox.completions() == completions {
            return Some((docker, inventory));
        }
        debug!("a start or removal ended while taking the inventory; taking it again");
    }
    debug!("inventory skipped: starts and removals kept ending meanwhile");
    None
}

/// Flags of the one-at-a-time inventory loop.
#[derive(Default)]
pub(crate) struct Reconciler {
    busy: AtomicBool,
    again: AtomicBool,
}

/// A back end that takes inventories.
pub(crate) trait Reconciles: Sized + 'static {
    fn reconciler(&self) -> &Reconciler;
    /// Takes one inventory and sends it.
    fn reconcile_once(self: Arc<Self>) -> impl Future<Output = ()>;

    /// Runs a reconciliation, or makes the running one go around once more: never two at once.
    fn request_reconcile(self: &Arc<Self>) {
        let flags = self.reconciler();
        flags.again.store(true, Ordering::SeqCst);
        if !flags.busy.swap(true, Ordering::SeqCst) {
            let inner = self.clone();
            actix::spawn(async move {
                loop {
                    inner.reconciler().again.store(false, Ordering::SeqCst);
                    inner.clone().reconcile_once().await;
                    let flags = inner.reconciler();
                    if flags.again.load(Ordering::SeqCst) {
                        continue;
                    }
                    flags.busy.store(false, Ordering::SeqCst);
                    // A request may have come between the check and the release.
                    if flags.again.load(Ordering::SeqCst) && !flags.busy.swap(true, Ordering::SeqCst) {
                        continue;
                    }
                    break;
                }
            });
        }
    }
}

/// A `label=` filter of the Docker API.
pub(crate) fn label_filter(pairs: &[(&str, String)]) -> HashMap<String, Vec<String>> {
    let labels = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    HashMap::from([("label".to_string(), labels)])
}

/// A numeric label.
pub(crate) fn label_u64(labels: Option<&HashMap<String, String>>, key: &str) -> Option<u64> {
    labels.and_then(|l| l.get(key)).and_then(|v| v.parse().ok())
}

/// The kind of a user's network: a bridge on one engine, an attachable overlay on a Swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NetworkKind {
    Bridge,
    Overlay,
}

/// Makes sure the user's network `network` of `owner` exists, of its kind, labelled with the
/// deployment and the owner; one made meanwhile by someone else is fine. On a Swarm a network
/// of that name that is not a swarm network is refused.
pub(crate) async fn ensure_network(
    client: &Client,
    docker: &Docker,
    deployment: &str,
    (network, owner): (&str, &str),
    kind: NetworkKind,
) -> Result<(), Failure> {
    let inspect = client
        .call_bounded(
            &format!("looking for network {network}"),
            docker.inspect_network(network, None::<InspectNetworkOptions>),
        )
        .await;
    match inspect {
        Ok(n) if kind == NetworkKind::Bridge || n.scope.as_deref() == Some("swarm") => return Ok(()),
        Ok(_) => {
            return Err(Failure::from(format!(
                "network {network} exists but is not a swarm network; remove it or rename the user"
            )))
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(Failure::call(e, |e| format!("cannot inspect network {network}: {e}"))),
    }
    let overlay = kind == NetworkKind::Overlay;
    let request = NetworkCreateRequest {
        name: network.to_string(),
        driver: Some(if overlay { "overlay" } else { "bridge" }.to_string()),
        attachable: overlay.then_some(true),
        labels: Some(HashMap::from([
            (LABEL_DEPLOYMENT.to_string(), deployment.to_string()),
            (LABEL_OWNER.to_string(), owner.to_string()),
        ])),
        ..Default::default()
    };
    match client.call_bounded(&format!("creating network {network}"), docker.create_network(request)).await {
        Ok(_) => {
            if overlay {
                info!(network, "created overlay network");
            } else {
                info!(network, "created network");
            }
            Ok(())
        }
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(Failure::call(e, |e| format!("cannot create network {network}: {e}"))),
    }
}

/// The mounts of a container's data sets: bind mounts, read-only, and not recursive, so that a
/// file system mounted somewhere beneath a data set's folder on the host (which Docker before 25
/// would leave writable) is not seen at all. Docker refuses a source that does not exist, rather
/// than making it.
pub(crate) fn dataset_mounts(datasets: &[DatasetMount]) -> Vec<Mount> {
    datasets
        .iter()
        .map(|d| Mount {
            target: Some(d.container.clone()),
            source: Some(d.host.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            bind_options: Some(MountBindOptions { non_recursive: Some(true), ..Default::default() }),
            ..Default::default()
        })
        .collect()
}
