//! Reference-counted element buffers. Views share a buffer; a buffer is never written once shared.
//!
//! Large buffers are recycled: when the last tensor using one is dropped, its memory goes to a
//! bounded pool keyed by length, and the next allocation of that length reuses it. Training loops
//! allocate the same shapes every step; without the pool, the system allocator hands large blocks
//! back to the kernel and every step pays for page faults on fresh memory.

use crate::device::Device;
use crate::dtype::{DType, Element};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, OnceLock};

/// A tensor's element buffer (CPU today). Not part of the public API.
#[derive(Clone)]
pub enum Storage {
    F32(Arc<Buffer<f32>>),
    F64(Arc<Buffer<f64>>),
    /// One value held inline: scalars (the common case in simulators) cost no buffer allocation.
    F32One(f32),
    /// One value held inline.
    F64One(f64),
}

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) | Storage::F32One(_) => DType::F32,
            Storage::F64(_) | Storage::F64One(_) => DType::F64,
        }
    }

    pub(crate) fn device(&self) -> Device {
        Device::Cpu
    }
}

/// Buffers shorter than this are not pooled (the allocator serves them well).
const MIN_POOLED: usize = 1 << 14;
/// At most this many idle buffers of one length.
const MAX_PER_LENGTH: usize = 16;

/// An element buffer that returns its memory to the pool when dropped.
pub struct Buffer<T: StorageElem> {
    data: Vec<T>,
}

impl<T: StorageElem> Buffer<T> {
    pub(crate) fn from_vec(data: Vec<T>) -> Buffer<T> {
        Buffer { data }
    }
}

impl<T: StorageElem> Deref for Buffer<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        &self.data
    }
}

impl<T: StorageElem> DerefMut for Buffer<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
}

impl<T: StorageElem> Drop for Buffer<T> {
    fn drop(&mut self) {
        if self.data.len() >= MIN_POOLED {
            T::pool().give(std::mem::take(&mut self.data));
        }
    }
}

/// Idle buffers by length, and the bytes they hold.
type Idle<T> = (HashMap<usize, Vec<Vec<T>>>, usize);

/// Idle buffers by length, with a bound on the bytes held.
pub struct Pool<T> {
    idle: Mutex<Idle<T>>,
}

impl<T> Pool<T> {
    fn new() -> Pool<T> {
        Pool {
            idle: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn limit_bytes() -> usize {
        static LIMIT: OnceLock<usize> = OnceLock::new();
        *LIMIT.get_or_init(|| {
            std::env::var("NABLA_POOL_MB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1024)
                << 20
        })
    }

    fn take(&self, n: usize) -> Option<Vec<T>> {
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let v = g.0.get_mut(&n)?.pop()?;
        g.1 -= n * std::mem::size_of::<T>();
        Some(v)
    }

    fn give(&self, v: Vec<T>) {
        let bytes = v.len() * std::mem::size_of::<T>();
        let mut g = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if g.1 + bytes > Self::limit_bytes() {
            return;
        }
        let list = g.0.entry(v.len()).or_default();
        if list.len() < MAX_PER_LENGTH {
            list.push(v);
            g.1 += bytes;
        }
    }
}

/// A zero-filled buffer of `n` elements.
#[inline]
pub(crate) fn zeroed<T: Element>(n: usize) -> Arc<Buffer<T>> {
    if n >= MIN_POOLED
        && let Some(mut v) = T::pool().take(n)
    {
        v.fill(T::zero());
        return Arc::new(Buffer { data: v });
    }
    // vec! of zeros uses calloc: large blocks arrive as zero pages without a write.
    Arc::new(Buffer {
        data: vec![T::zero(); n],
    })
}

/// Allocates `n` zeroed elements and lets `fill` write them.
#[inline]
pub(crate) fn build<T: Element>(n: usize, fill: impl FnOnce(&mut [T])) -> Arc<Buffer<T>> {
    let mut a = zeroed::<T>(n);
    fill(Arc::get_mut(&mut a).expect("fresh buffer is unique"));
    a
}

/// Allocates `n` elements whose initial values are unspecified (finite numbers, possibly stale),
/// for kernels that overwrite every element: `fill` must write all of them.
#[inline]
pub(crate) fn build_overwrite<T: Element>(n: usize, fill: impl FnOnce(&mut [T])) -> Arc<Buffer<T>> {
    let mut a = match (n >= MIN_POOLED).then(|| T::pool().take(n)).flatten() {
        Some(v) => Arc::new(Buffer { data: v }),
        None => Arc::new(Buffer {
            data: vec![T::zero(); n],
        }),
    };
    fill(Arc::get_mut(&mut a).expect("fresh buffer is unique"));
    a
}

/// A vector of `n` elements for scratch work, recycled from the pool when one of that length is
/// idle (its contents are then stale but initialised); return it with [`recycle`].
pub(crate) fn take_vec<T: Element>(n: usize) -> Vec<T> {
    if n >= MIN_POOLED
        && let Some(v) = T::pool().take(n)
    {
        return v;
    }
    vec![T::zero(); n]
}

/// Gives a scratch vector back to the pool (small ones are simply freed).
pub(crate) fn recycle<T: Element>(v: Vec<T>) {
    if v.len() >= MIN_POOLED {
        T::pool().give(v);
    }
}

/// Access to a storage buffer for one element type; implemented by the sealed [`Element`] types.
pub trait StorageElem: Sized + Copy + Send + 'static {
    fn slice(s: &Storage) -> Option<&[Self]>;
    fn slice_mut(s: &mut Storage) -> Option<&mut [Self]>;
    fn wrap(a: Arc<Buffer<Self>>) -> Storage;
    fn wrap_one(v: Self) -> Storage;
    fn pool() -> &'static Pool<Self>;
}

macro_rules! storage_elem {
    ($t:ty, $many:ident, $one:ident) => {
        impl StorageElem for $t {
            #[inline(always)]
            fn slice(s: &Storage) -> Option<&[$t]> {
                match s {
                    Storage::$many(a) => Some(a),
                    Storage::$one(v) => Some(std::slice::from_ref(v)),
                    _ => None,
                }
            }
            #[inline(always)]
            fn slice_mut(s: &mut Storage) -> Option<&mut [$t]> {
                match s {
                    Storage::$many(a) => Arc::get_mut(a).map(|b| &mut **b),
                    Storage::$one(v) => Some(std::slice::from_mut(v)),
                    _ => None,
                }
            }
            #[inline(always)]
            fn wrap(a: Arc<Buffer<$t>>) -> Storage {
                Storage::$many(a)
            }
            #[inline(always)]
            fn wrap_one(v: $t) -> Storage {
                Storage::$one(v)
            }
            fn pool() -> &'static Pool<$t> {
                static POOL: OnceLock<Pool<$t>> = OnceLock::new();
                POOL.get_or_init(Pool::new)
            }
        }
    };
}

storage_elem!(f32, F32, F32One);
storage_elem!(f64, F64, F64One);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_come_back_zeroed() {
        let n = MIN_POOLED + 3;
        let a = build::<f64>(n, |o| o.fill(7.0));
        drop(a);
        let b = zeroed::<f64>(n);
        assert!(b.iter().all(|&v| v == 0.0));
        let c = build_overwrite::<f64>(n, |o| o.fill(1.0));
        assert!(c.iter().all(|&v| v == 1.0));
    }
}
