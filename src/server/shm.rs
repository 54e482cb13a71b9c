//! The system shared memory extension: named regions of POSIX shared memory objects that
//! clients register, then use for request inputs and response outputs.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{MmapMut, MmapOptions};
use parking_lot::{Mutex, RwLock};

use crate::status::{Code, Status};

/// A registered region: a mapping of `byte_size` bytes at `offset` of the object `key`.
pub struct Region {
    pub name: String,
    pub key: String,
    pub offset: u64,
    pub byte_size: u64,
    map: Mutex<MmapMut>,
}

impl Region {
    /// Copies `size` bytes at `offset` (relative to the region) out of shared memory.
    pub fn read(&self, offset: u64, size: u64) -> Result<Bytes, Status> {
        let range = self.range(offset, size)?;
        Ok(Bytes::copy_from_slice(&self.map.lock()[range]))
    }

    /// Writes `data` at `offset` (relative to the region).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Status> {
        let range = self.range(offset, data.len() as u64)?;
        self.map.lock()[range].copy_from_slice(data);
        Ok(())
    }

    fn range(&self, offset: u64, size: u64) -> Result<std::ops::Range<usize>, Status> {
        match offset.checked_add(size) {
            Some(end) if end <= self.byte_size => Ok(offset as usize..end as usize),
            _ => Err(Status::invalid_arg(format!(
                "Invalid offset + byte size for shared memory region: '{}'",
                self.name
            ))),
        }
    }
}

#[derive(Default)]
pub struct ShmRegistry {
    regions: RwLock<BTreeMap<String, Arc<Region>>>,
}

impl ShmRegistry {
    pub fn register(
        &self,
        name: &str,
        key: &str,
        offset: u64,
        byte_size: u64,
    ) -> Result<(), Status> {
        if self.regions.read().contains_key(name) {
            return Err(Status::new(
                Code::AlreadyExists,
                format!("shared memory region '{name}' already in manager"),
            ));
        }
        // Triton answers a bad window differently when the object is mapped for another region.
        let key_in_use = self.regions.read().values().any(|r| r.key == key);
        let map = map_region(name, key, offset, byte_size, key_in_use)?;
        let region = Arc::new(Region {
            name: name.to_string(),
            key: key.to_string(),
            offset,
            byte_size,
            map: Mutex::new(map),
        });
        let mut regions = self.regions.write();
        if regions.contains_key(name) {
            return Err(Status::new(
                Code::AlreadyExists,
                format!("shared memory region '{name}' already in manager"),
            ));
        }
        regions.insert(name.to_string(), region);
        Ok(())
    }

    /// Unregisters one region, or all when `name` is `None`. Unknown names are not an error.
    pub fn unregister(&self, name: Option<&str>) {
        let mut regions = self.regions.write();
        match name {
            Some(n) => {
                regions.remove(n);
            }
            None => regions.clear(),
        }
    }

    pub fn get(&self, name: &str) -> Result<Arc<Region>, Status> {
        self.regions.read().get(name).cloned().ok_or_else(|| {
            Status::invalid_arg(format!(
                "Unable to find system shared memory region: '{name}'"
            ))
        })
    }

    /// Registered regions, by name; only `name` when given (an error if it is unknown).
    pub fn status(&self, name: Option<&str>) -> Result<Vec<Arc<Region>>, Status> {
        let regions = self.regions.read();
        match name {
            Some(n) => regions.get(n).cloned().map(|r| vec![r]).ok_or_else(|| {
                Status::not_found(format!("Unable to find system shared memory region: '{n}'"))
            }),
            None => Ok(regions.values().cloned().collect()),
        }
    }
}

fn map_region(
    name: &str,
    key: &str,
    offset: u64,
    byte_size: u64,
    key_in_use: bool,
) -> Result<MmapMut, Status> {
    let open_err = || Status::internal(format!("Unable to open shared memory region: '{key}'"));
    let ckey = CString::new(key).map_err(|_| open_err())?;
    // SAFETY: `ckey` is a valid NUL-terminated string; the descriptor is owned below.
    let fd = unsafe { libc::shm_open(ckey.as_ptr(), libc::O_RDWR, 0) };
    if fd < 0 {
        return Err(open_err());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nothing else.
    let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let invalid = || Status::internal(format!("Invalid shared memory region: '{key}'"));
    let len = file.metadata().map_err(|_| invalid())?.len();
    if byte_size == 0 {
        return Err(Status::invalid_arg(format!(
            "failed to register shared memory region '{name}': unable to process address spaceInvalid argument"
        )));
    }
    if offset.checked_add(byte_size).is_none_or(|end| end > len) {
        return Err(if key_in_use {
            invalid()
        } else {
            Status::invalid_arg(format!(
                "failed to register shared memory region '{name}': invalid args"
            ))
        });
    }
    // SAFETY: the mapping stays within the object's size, checked above. Other processes
    // may write to it concurrently; reads and writes copy bytes and never form references
    // to typed data, so a concurrent change yields odd values, not undefined behaviour.
    unsafe {
        MmapOptions::new()
            .offset(offset)
            .len(byte_size as usize)
            .map_mut(&file)
    }
    .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shm(CString);
    impl Shm {
        fn new(name: &str, size: i64) -> Shm {
            let c = CString::new(name).unwrap();
            unsafe {
                let fd = libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600);
                assert!(fd >= 0);
                assert_eq!(libc::ftruncate(fd, size), 0);
                libc::close(fd);
            }
            Shm(c)
        }
    }
    impl Drop for Shm {
        fn drop(&mut self) {
            unsafe { libc::shm_unlink(self.0.as_ptr()) };
        }
    }

    #[test]
    fn register_read_write_bounds() {
        let key = format!("/despina_test_{}", std::process::id());
        let _shm = Shm::new(&key, 64);
        let reg = ShmRegistry::default();
        reg.register("r", &key, 16, 32).unwrap();
        assert_eq!(
            reg.register("r", &key, 0, 8).unwrap_err().message,
            "shared memory region 'r' already in manager"
        );
        let r = reg.get("r").unwrap();
        r.write(4, b"abcd").unwrap();
        assert_eq!(&r.read(4, 4).unwrap()[..], b"abcd");
        assert!(r.read(30, 4).is_err());
        assert!(r.write(u64::MAX, b"x").is_err());
        assert_eq!(
            reg.register("big", &key, 60, 8).unwrap_err().message,
            format!("Invalid shared memory region: '{key}'")
        );
        assert_eq!(
            reg.register("zero", &key, 0, 0).unwrap_err().message,
            "failed to register shared memory region 'zero': unable to process address spaceInvalid argument"
        );
        assert!(reg.register("none", "/despina_no_such_key", 0, 8).is_err());
        assert_eq!(reg.status(None).unwrap().len(), 1);
        reg.unregister(Some("r"));
        assert!(reg.get("r").is_err());
        let e = reg.register("big", &key, 60, 8).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                Code::InvalidArg,
                "failed to register shared memory region 'big': invalid args"
            )
        );
    }
}
