//! The protocol-neutral request/response model shared by every frontend, the scheduler and
//! the backends.
//!
//! A frontend decodes its wire format into an [`InferRequest`], [`validate`] checks it against
//! the model's config once, the scheduler queues it, and a backend instance answers through
//! the request's [`Responder`], once (or several times for decoupled models). The frontend
//! reads the answers from the matching [`ResponseStream`].

pub mod classify;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::stats::ModelStats;
use crate::status::Status;
use crate::tensor::Tensor;
use crate::trace::Trace;

/// A request or response parameter (the KServe v2 parameters extension).
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(String),
}

/// Parameters in the order the client sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parameters(pub Vec<(String, ParamValue)>);

impl Parameters {
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn insert(&mut self, key: impl Into<String>, value: ParamValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        NamedTensor {
            name: name.into(),
            tensor,
        }
    }
}

/// An output the client asked for; no entry means "all outputs".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    /// The classification extension: answer the top `class_count` classes instead of the tensor.
    pub class_count: u32,
}

/// A sequence correlation id: Triton accepts unsigned integers or strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CorrelationId {
    Int(u64),
    Str(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SequenceInfo {
    pub id: CorrelationId,
    pub start: bool,
    pub end: bool,
}

/// One inference request on its way to a backend instance.
pub struct InferRequest {
    pub id: String,
    pub inputs: Vec<NamedTensor>,
    pub outputs: Vec<RequestedOutput>,
    pub parameters: Parameters,
    /// 0 means the model's default priority level.
    pub priority: u64,
    /// Queue timeout in microseconds; 0 means the model's default.
    pub timeout_us: u64,
    pub sequence: Option<SequenceInfo>,
    /// Rows this request contributes to a batch (1 for models that do not batch).
    pub batch_size: usize,
    pub arrival: Instant,
    pub cancel: CancellationToken,
    pub responder: Responder,
    /// Set when the tracer sampled this request.
    pub trace: Option<Arc<Trace>>,
}

impl InferRequest {
    /// A request and the stream its answers arrive on.
    pub fn new(id: String, inputs: Vec<NamedTensor>) -> (InferRequest, ResponseStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let req = InferRequest {
            id,
            inputs,
            outputs: Vec::new(),
            parameters: Parameters::default(),
            priority: 0,
            timeout_us: 0,
            sequence: None,
            batch_size: 1,
            arrival: Instant::now(),
            cancel: CancellationToken::new(),
            responder: Responder::new(tx),
            trace: None,
        };
        (req, ResponseStream { rx })
    }

    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs
            .iter()
            .find(|t| t.name == name)
            .map(|t| &t.tensor)
    }

    /// Whether the client wants output `name` (all outputs when it named none).
    pub fn wants(&self, name: &str) -> bool {
        self.outputs.is_empty() || self.outputs.iter().any(|o| o.name == name)
    }
}

/// One answer: a response, an error, or (for decoupled models) only the final flag.
#[derive(Debug)]
pub struct ResponseItem {
    pub response: Option<Result<InferResponse, Status>>,
    /// No more items follow for this request.
    pub last: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferResponse {
    pub outputs: Vec<NamedTensor>,
    pub parameters: Parameters,
}

impl InferResponse {
    pub fn new(outputs: Vec<NamedTensor>) -> Self {
        InferResponse {
            outputs,
            parameters: Parameters::default(),
        }
    }
    pub fn output(&self, name: &str) -> Option<&Tensor> {
        self.outputs
            .iter()
            .find(|t| t.name == name)
            .map(|t| &t.tensor)
    }
}

/// The sending half: held by the request, used by backends (from any thread).
///
/// Dropping a responder that never sent its final answer fails the request, so a request
/// can never hang, whatever happens to the instance that held it.
pub struct Responder {
    tx: mpsc::UnboundedSender<ResponseItem>,
    done: bool,
    stats: Option<(Arc<ModelStats>, Instant)>,
    trace: Option<Arc<Trace>>,
    gate: Option<Arc<Gate>>,
    order: Option<(Arc<OrderKeeper>, u64)>,
    on_final: Vec<FinalHook>,
}

/// Runs on a request's final answer before it is sent, on the thread that sends it:
/// `Some` with the response (which it may change), `None` for an error or a bare final
/// flag. How the response cache stores answers and implicit state keeps output states.
pub type FinalHook = Box<dyn FnOnce(Option<&mut InferResponse>) + Send>;

/// Releases final answers in the order their requests were accepted (the dynamic
/// batcher's `preserve_ordering`), whatever order the instances finish them in.
#[derive(Default)]
pub struct OrderKeeper {
    state: parking_lot::Mutex<OrderState>,
}

#[derive(Default)]
struct OrderState {
    next_ticket: u64,
    next_release: u64,
    done: std::collections::BTreeMap<u64, Box<dyn FnOnce() + Send>>,
}

impl OrderKeeper {
    /// The place in line of a newly accepted request.
    pub fn ticket(&self) -> u64 {
        let mut st = self.state.lock();
        st.next_ticket += 1;
        st.next_ticket - 1
    }

    /// Marks `ticket` finished; runs every finished answer whose turn has come. The answers
    /// run under the lock, so they are delivered strictly in order.
    fn complete(&self, ticket: u64, f: Box<dyn FnOnce() + Send>) {
        let mut st = self.state.lock();
        st.done.insert(ticket, f);
        loop {
            let next = st.next_release;
            let Some(f) = st.done.remove(&next) else {
                break;
            };
            st.next_release += 1;
            f();
        }
    }
}

/// Work delivered later: the final step of answering a request.
type Deferred = Box<dyn FnOnce() + Send>;

/// Holds the final answers of one execution until its statistics are recorded, so a client
/// that reads the statistics right after its answer always sees its own execution counted.
#[derive(Default)]
pub struct Gate {
    held: parking_lot::Mutex<Option<Vec<Deferred>>>,
}

impl Gate {
    /// A closed gate: final answers wait in it.
    pub fn closed() -> Arc<Gate> {
        Arc::new(Gate {
            held: parking_lot::Mutex::new(Some(Vec::new())),
        })
    }

    fn run_or_hold(&self, f: Box<dyn FnOnce() + Send>) {
        let mut held = self.held.lock();
        match held.as_mut() {
            Some(v) => v.push(f),
            None => {
                drop(held);
                f();
            }
        }
    }

    /// Releases what is held; answers given later pass straight through.
    pub fn open(&self) {
        let held = self.held.lock().take();
        for f in held.into_iter().flatten() {
            f();
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

impl Responder {
    fn new(tx: mpsc::UnboundedSender<ResponseItem>) -> Self {
        Responder {
            tx,
            done: false,
            stats: None,
            trace: None,
            gate: None,
            order: None,
            on_final: Vec::new(),
        }
    }

    /// Records the request's outcome in `stats` when its final answer is sent.
    pub fn attach_stats(&mut self, stats: Arc<ModelStats>, arrival: Instant) {
        self.stats = Some((stats, arrival));
    }

    /// Marks REQUEST_END on `trace` when the final answer is sent.
    pub fn attach_trace(&mut self, trace: Arc<Trace>) {
        self.trace = Some(trace);
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the client is still listening.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends one response; `last` marks the final one.
    pub fn send(&mut self, response: InferResponse, last: bool) {
        self.push(Some(Ok(response)), last, None);
    }

    /// Sends the final, complete answer of a non-decoupled request.
    pub fn respond(&mut self, response: InferResponse) {
        self.send(response, true);
    }

    /// Fails the request; nothing follows.
    pub fn fail(&mut self, status: Status) {
        let code = status.code;
        self.push(Some(Err(status)), true, Some(code));
    }

    /// Sends the final flag with no response (decoupled models).
    pub fn finish(&mut self) {
        self.push(None, true, None);
    }

    fn push(
        &mut self,
        mut response: Option<Result<InferResponse, Status>>,
        last: bool,
        failure: Option<crate::status::Code>,
    ) {
        if self.done {
            return;
        }
        self.done = last;
        if last {
            for hook in std::mem::take(&mut self.on_final) {
                let answer = match &mut response {
                    Some(Ok(r)) => Some(r),
                    _ => None,
                };
                hook(answer);
            }
        }
        let item = ResponseItem { response, last };
        if !last {
            // A closed receiver means the client left; the answer has nowhere to go.
            let _ = self.tx.send(item);
            return;
        }
        let (tx, trace, stats) = (self.tx.clone(), self.trace.take(), self.stats.take());
        let finish = move || {
            if let Some((stats, arrival)) = stats {
                stats.record_request(arrival, failure);
            }
            if let Some(t) = trace {
                t.mark("REQUEST_END");
            }
            let _ = tx.send(item);
        };
        let finish: Box<dyn FnOnce() + Send> = match self.order.take() {
            Some((keeper, ticket)) => Box::new(move || keeper.complete(ticket, Box::new(finish))),
            None => Box::new(finish),
        };
        match &self.gate {
            Some(gate) => gate.run_or_hold(finish),
            None => finish(),
        }
    }

    /// Delivers the final answer only after those of earlier tickets of `keeper`.
    pub fn attach_order(&mut self, keeper: Arc<OrderKeeper>, ticket: u64) {
        self.order = Some((keeper, ticket));
    }

    /// Runs `hook` on the final answer before it is sent.
    pub fn on_final(&mut self, hook: FinalHook) {
        self.on_final.push(hook);
    }

    /// Holds this request's final answer in `gate` until the gate opens.
    pub fn attach_gate(&mut self, gate: Arc<Gate>) {
        self.gate = Some(gate);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            let message = if std::thread::panicking() {
                let why = LAST_PANIC
                    .with(|p| p.borrow().clone())
                    .unwrap_or_else(|| "unknown panic".into());
                format!(
                    "model instance crashed while executing the request ({why}); the instance is being restarted"
                )
            } else {
                "request was dropped before its final response was sent".to_string()
            };
            self.fail(Status::internal(message));
        }
    }
}

thread_local! {
    /// The message of the panic unwinding this thread, for the requests it fails.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs a panic hook (keeping the previous one) that remembers each panic's message on
/// its thread, so requests failed by the unwinding can say what happened.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic".to_string()
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
        previous(info);
    }));
}

/// The receiving half, held by the frontend.
pub struct ResponseStream {
    rx: mpsc::UnboundedReceiver<ResponseItem>,
}

impl ResponseStream {
    pub async fn next(&mut self) -> Option<ResponseItem> {
        self.rx.recv().await
    }

    /// Waits for the one final answer of a non-decoupled request.
    pub async fn single(mut self) -> Result<InferResponse, Status> {
        let mut last = None;
        while let Some(item) = self.rx.recv().await {
            if let Some(r) = item.response {
                last = Some(r);
            }
            if item.last {
                break;
            }
        }
        last.unwrap_or_else(|| Err(Status::internal("model returned no response")))
    }

    /// Blocking wait for the next answer, bounded in time; `None` on timeout or end.
    /// Usable from any thread outside the async runtime.
    pub fn blocking_next_timeout(&mut self, timeout: std::time::Duration) -> Option<ResponseItem> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.try_recv() {
                Ok(item) => return Some(item),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
        }
    }

    /// Blocking form of [`ResponseStream::next`] for tests and non-async callers.
    pub fn blocking_next(&mut self) -> Option<ResponseItem> {
        self.rx.blocking_recv()
    }
}
