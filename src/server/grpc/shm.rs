//! The shared memory extensions: system shared memory through the server's registry, and
//! CUDA shared memory answered as Triton answers on a machine without a GPU.

use super::ServerState;
use crate::proto::inference as pb;
use crate::status::Status;

pub(super) fn system_status(
    state: &ServerState,
    r: &pb::SystemSharedMemoryStatusRequest,
) -> Result<pb::SystemSharedMemoryStatusResponse, Status> {
    let name = (!r.name.is_empty()).then_some(r.name.as_str());
    let regions = state
        .shm
        .status(name)?
        .iter()
        .map(|reg| {
            let status = pb::system_shared_memory_status_response::RegionStatus {
                name: reg.name.clone(),
                key: reg.key.clone(),
                offset: reg.offset,
                byte_size: reg.byte_size,
            };
            (reg.name.clone(), status)
        })
        .collect();
    Ok(pb::SystemSharedMemoryStatusResponse { regions })
}

pub(super) fn system_register(
    state: &ServerState,
    r: &pb::SystemSharedMemoryRegisterRequest,
) -> Result<pb::SystemSharedMemoryRegisterResponse, Status> {
    state.shm.register(&r.name, &r.key, r.offset, r.byte_size)?;
    Ok(pb::SystemSharedMemoryRegisterResponse {})
}

/// Unregisters one region, or all of them for an empty name; unknown names are no error.
pub(super) fn system_unregister(
    state: &ServerState,
    r: &pb::SystemSharedMemoryUnregisterRequest,
) -> pb::SystemSharedMemoryUnregisterResponse {
    state
        .shm
        .unregister((!r.name.is_empty()).then_some(r.name.as_str()));
    pb::SystemSharedMemoryUnregisterResponse {}
}

/// No CUDA regions can exist, so every named one is unknown.
pub(super) fn cuda_status(
    r: &pb::CudaSharedMemoryStatusRequest,
) -> Result<pb::CudaSharedMemoryStatusResponse, Status> {
    if r.name.is_empty() {
        Ok(pb::CudaSharedMemoryStatusResponse::default())
    } else {
        Err(Status::not_found(format!(
            "Unable to find cuda shared memory region: '{}'",
            r.name
        )))
    }
}

/// Registering needs a GPU to open the IPC handle; Triton without one refuses like this.
pub(super) fn cuda_register() -> Result<pb::CudaSharedMemoryRegisterResponse, Status> {
    Err(Status::invalid_arg(
        "failed to register shared memory region: invalid args",
    ))
}
