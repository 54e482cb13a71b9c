//! The shared memory extensions: system shared memory through the server's registry, and
//! CUDA shared memory answered as Triton answers on a machine without a GPU; and the
//! `shared_memory_*` parameters of request tensors.

use std::collections::HashMap;
use std::sync::Arc;

use super::ServerState;
use crate::proto::inference as pb;
use crate::proto::inference::infer_parameter::ParameterChoice as P;
use crate::server::shm::Region;
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

/// A bounds-checked window of a registered shared memory region.
pub(super) struct ShmSlot {
    pub region: Arc<Region>,
    pub offset: u64,
    pub byte_size: u64,
}

/// The `shared_memory_*` parameters of one tensor.
pub(super) struct ShmParams {
    region: String,
    offset: i64,
    byte_size: i64,
}

impl ShmParams {
    pub fn parse(
        params: &HashMap<String, pb::InferParameter>,
        tensor: &str,
    ) -> Result<Option<ShmParams>, Status> {
        let wrong_type = |key: &str, expected: &str| {
            Status::invalid_arg(format!(
                "invalid value type for '{key}' parameter for tensor '{tensor}', expected {expected}."
            ))
        };
        let region = match params
            .get("shared_memory_region")
            .map(|p| &p.parameter_choice)
        {
            None => None,
            Some(Some(P::StringParam(s))) => Some(s.clone()),
            Some(_) => return Err(wrong_type("shared_memory_region", "string_param")),
        };
        let int = |key: &str| match params.get(key).map(|p| &p.parameter_choice) {
            None => Ok(None),
            Some(Some(P::Int64Param(v))) => Ok(Some(*v)),
            Some(_) => Err(wrong_type(key, "int64_param")),
        };
        let offset = int("shared_memory_offset")?;
        let byte_size = int("shared_memory_byte_size")?;
        let without_region = |key: &str| {
            Status::invalid_arg(format!(
                "'{key}' can not be specified without 'shared_memory_region' parameter for tensor '{tensor}'"
            ))
        };
        match (region, byte_size) {
            (Some(region), Some(byte_size)) => Ok(Some(ShmParams {
                region,
                offset: offset.unwrap_or(0),
                byte_size,
            })),
            (Some(_), None) => Err(Status::invalid_arg(format!(
                "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor '{tensor}'"
            ))),
            (None, Some(_)) => Err(without_region("shared_memory_byte_size")),
            (None, None) if offset.is_some() => Err(without_region("shared_memory_offset")),
            (None, None) => Ok(None),
        }
    }

    pub fn resolve(&self, state: &ServerState) -> Result<ShmSlot, Status> {
        let region = state.shm.get(&self.region).map_err(|_| {
            Status::not_found(format!(
                "Unable to find shared memory region: '{}'",
                self.region
            ))
        })?;
        let offset = u64::try_from(self.offset).map_err(|_| {
            Status::invalid_arg(format!(
                "Invalid offset for shared memory region: '{}'",
                self.region
            ))
        })?;
        let byte_size = u64::try_from(self.byte_size).map_err(|_| out_of_bounds(&self.region))?;
        Ok(ShmSlot {
            region,
            offset,
            byte_size,
        })
    }

    /// Outputs are checked against the region before the model runs; Triton leaves this to
    /// chance and may write past the region.
    pub fn resolve_output(&self, state: &ServerState) -> Result<ShmSlot, Status> {
        let slot = self.resolve(state)?;
        match slot.offset.checked_add(slot.byte_size) {
            Some(end) if end <= slot.region.byte_size => Ok(slot),
            _ => Err(out_of_bounds(&self.region)),
        }
    }
}

fn out_of_bounds(region: &str) -> Status {
    Status::invalid_arg(format!(
        "Invalid offset + byte size for shared memory region: '{region}'"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(p: P) -> pb::InferParameter {
        pb::InferParameter {
            parameter_choice: Some(p),
        }
    }

    #[track_caller]
    fn shm_err(params: &[(&str, P)]) -> String {
        let map: HashMap<String, pb::InferParameter> = params
            .iter()
            .map(|(k, p)| (k.to_string(), param(p.clone())))
            .collect();
        ShmParams::parse(&map, "T").err().expect("an error").message
    }

    #[test]
    fn shared_memory_parameters() {
        let region = || ("shared_memory_region", P::StringParam("r".into()));
        let size = || ("shared_memory_byte_size", P::Int64Param(8));
        assert_eq!(
            shm_err(&[region()]),
            "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[size()]),
            "'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[("shared_memory_offset", P::Int64Param(0))]),
            "'shared_memory_offset' can not be specified without 'shared_memory_region' parameter for tensor 'T'"
        );
        assert_eq!(
            shm_err(&[("shared_memory_region", P::Int64Param(1)), size()]),
            "invalid value type for 'shared_memory_region' parameter for tensor 'T', expected string_param."
        );
        assert_eq!(
            shm_err(&[
                region(),
                ("shared_memory_byte_size", P::StringParam("8".into()))
            ]),
            "invalid value type for 'shared_memory_byte_size' parameter for tensor 'T', expected int64_param."
        );
        let map: HashMap<String, pb::InferParameter> = [region(), size()]
            .into_iter()
            .map(|(k, p)| (k.to_string(), param(p)))
            .collect();
        let p = ShmParams::parse(&map, "T").unwrap().unwrap();
        assert_eq!((p.region.as_str(), p.offset, p.byte_size), ("r", 0, 8));
    }
}
