//! ModelStreamInfer: many requests on one bidirectional stream, each answered by one
//! response (or, for decoupled models, any number), interleaved and tagged with the request
//! id. Errors travel inside the stream and never end it.
//!
//! One task drives a stream: it reads requests in order (so sequences stay ordered), submits
//! them and forwards their answers concurrently. The stream ends cleanly once the client has
//! half-closed and every answer is out; when the client goes away, the task ends and every
//! request still in flight is cancelled; on shutdown it stops reading at once and ends as soon
//! as the requests in flight are answered.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::DropGuard;
use tonic::Streaming;
use tonic::codegen::BoxStream;

use super::ServerState;
use super::infer::{Reply, Rpc, decode, encode};
use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice as P;
use crate::repository::ModelVersion;
use crate::request::ResponseStream;
use crate::server::state::InflightGuard;
use crate::status::Status;

/// Answers buffered towards a slow reader before forwarding waits.
const OUT_BUFFER: usize = 64;
/// Requests of one stream in flight at once; beyond this the stream stops reading.
const MAX_IN_FLIGHT: usize = 256;

type Tx = mpsc::Sender<Result<pb::ModelStreamInferResponse, tonic::Status>>;

pub(super) fn start(
    state: Arc<ServerState>,
    inbound: Streaming<pb::ModelInferRequest>,
    traceparent: Option<String>,
) -> BoxStream<pb::ModelStreamInferResponse> {
    let (tx, rx) = mpsc::channel(OUT_BUFFER);
    tokio::spawn(drive(state, inbound, tx, traceparent));
    Box::pin(ReceiverStream::new(rx))
}

async fn drive(
    state: Arc<ServerState>,
    mut inbound: Streaming<pb::ModelInferRequest>,
    tx: Tx,
    traceparent: Option<String>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut reading = true;
    let mut interrupted = false;
    while reading || !in_flight.is_empty() {
        tokio::select! {
            biased;
            // The client is gone: dropping the forwarders cancels their requests.
            () = tx.closed() => return,
            () = state.shutdown.cancelled(), if reading => {
                reading = false;
                interrupted = true;
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            read = inbound.message(), if reading && in_flight.len() < MAX_IN_FLIGHT => match read {
                Ok(Some(msg)) => match begin(&state, msg, traceparent.as_deref()) {
                    Ok(flight) => in_flight.push(forward(flight, tx.clone())),
                    Err(answer) => {
                        if tx.send(Ok(*answer)).await.is_err() {
                            return;
                        }
                    }
                },
                Ok(None) => reading = false,
                // The request stream broke (a reset, an oversized or undecodable message).
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            },
        }
    }
    if interrupted {
        let _ = tx
            .send(Err(tonic::Status::unavailable("Server is shutting down")))
            .await;
    }
}

/// One submitted request of the stream.
struct Flight {
    model: Arc<ModelVersion>,
    responses: ResponseStream,
    reply: Reply,
    _inflight: InflightGuard,
    cancel: DropGuard,
}

/// Decodes and submits one request; a refusal is answered inside the stream, carrying only
/// the request id, as Triton does.
fn begin(
    state: &Arc<ServerState>,
    msg: pb::ModelInferRequest,
    traceparent: Option<&str>,
) -> Result<Flight, Box<pb::ModelStreamInferResponse>> {
    let inflight = state.begin_request();
    let id = msg.id.clone();
    let refused = |s: Status| {
        Box::new(pb::ModelStreamInferResponse {
            error_message: s.message,
            infer_response: Some(pb::ModelInferResponse {
                id: id.clone(),
                ..Default::default()
            }),
        })
    };
    let d = decode(state, msg, Rpc::Stream, traceparent).map_err(refused)?;
    let cancel = d.request.cancel.clone().drop_guard();
    d.reply.mark("REQUEST_START");
    d.model.submit(d.request).map_err(refused)?;
    Ok(Flight {
        model: d.model,
        responses: d.responses,
        reply: d.reply,
        _inflight: inflight,
        cancel,
    })
}

/// Forwards the answers of one request until its final one.
async fn forward(flight: Flight, tx: Tx) {
    let Flight {
        model,
        mut responses,
        reply,
        _inflight,
        cancel,
    } = flight;
    while let Some(item) = responses.next().await {
        let answer = match item.response {
            Some(Ok(r)) => match encode(&model, &reply, r) {
                Ok(mut r) => {
                    r.parameters
                        .insert("triton_final_response".into(), final_flag(item.last));
                    Some(pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(r),
                    })
                }
                Err(e) => Some(failed(&model, &reply, e, item.last)),
            },
            Some(Err(e)) => Some(failed(&model, &reply, e, item.last)),
            // Decoupled models end with a bare final flag; sent only when asked for.
            None if item.last && reply.empty_final => Some(pb::ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(bare(&model, &reply, true)),
            }),
            None => None,
        };
        if let Some(answer) = answer {
            reply.mark("GRPC_SEND_START");
            if tx.send(Ok(answer)).await.is_err() {
                // The client left: `cancel` drops here and cancels the request.
                return;
            }
            reply.mark("GRPC_SEND_END");
        }
        if item.last {
            break;
        }
    }
    cancel.disarm();
}

/// An answer that failed after the model took the request: Triton names the model too.
fn failed(
    model: &ModelVersion,
    reply: &Reply,
    e: Status,
    last: bool,
) -> pb::ModelStreamInferResponse {
    pb::ModelStreamInferResponse {
        error_message: e.message,
        infer_response: Some(bare(model, reply, last)),
    }
}

fn bare(model: &ModelVersion, reply: &Reply, last: bool) -> pb::ModelInferResponse {
    pb::ModelInferResponse {
        model_name: model.name.clone(),
        id: reply.id.clone(),
        parameters: HashMap::from([("triton_final_response".to_string(), final_flag(last))]),
        ..Default::default()
    }
}

fn final_flag(last: bool) -> pb::InferParameter {
    pb::InferParameter {
        parameter_choice: Some(P::BoolParam(last)),
    }
}
