//! Reference-counted element buffers. Views share a buffer; a buffer is never written once shared.

use crate::device::Device;
use crate::dtype::{DType, Element};
use std::sync::Arc;

/// A tensor's element buffer (CPU today). Not part of the public API.
#[derive(Clone)]
pub enum Storage {
    F32(Arc<[f32]>),
    F64(Arc<[f64]>),
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

/// A zero-filled buffer of `n` elements in one allocation.
#[inline]
pub(crate) fn zeroed<T: Element>(n: usize) -> Arc<[T]> {
    let a = Arc::<[T]>::new_zeroed_slice(n);
    // SAFETY: T is f32 or f64 (Element is sealed), for which the all-zero bit pattern is 0.0.
    unsafe { a.assume_init() }
}

/// Allocates `n` elements and lets `fill` write every one of them.
#[inline]
pub(crate) fn build<T: Element>(n: usize, fill: impl FnOnce(&mut [T])) -> Arc<[T]> {
    let mut a = zeroed::<T>(n);
    fill(Arc::get_mut(&mut a).expect("fresh buffer is unique"));
    a
}

/// Access to a storage buffer for one element type; implemented by the sealed [`Element`] types.
pub trait StorageElem: Sized {
    fn slice(s: &Storage) -> Option<&[Self]>;
    fn slice_mut(s: &mut Storage) -> Option<&mut [Self]>;
    fn wrap(a: Arc<[Self]>) -> Storage;
    fn wrap_one(v: Self) -> Storage;
}

impl StorageElem for f32 {
    #[inline(always)]
    fn slice(s: &Storage) -> Option<&[f32]> {
        match s {
            Storage::F32(a) => Some(a),
            Storage::F32One(v) => Some(std::slice::from_ref(v)),
            _ => None,
        }
    }
    #[inline(always)]
    fn slice_mut(s: &mut Storage) -> Option<&mut [f32]> {
        match s {
            Storage::F32(a) => Arc::get_mut(a),
            Storage::F32One(v) => Some(std::slice::from_mut(v)),
            _ => None,
        }
    }
    #[inline(always)]
    fn wrap(a: Arc<[f32]>) -> Storage {
        Storage::F32(a)
    }
    #[inline(always)]
    fn wrap_one(v: f32) -> Storage {
        Storage::F32One(v)
    }
}

impl StorageElem for f64 {
    #[inline(always)]
    fn slice(s: &Storage) -> Option<&[f64]> {
        match s {
            Storage::F64(a) => Some(a),
            Storage::F64One(v) => Some(std::slice::from_ref(v)),
            _ => None,
        }
    }
    #[inline(always)]
    fn slice_mut(s: &mut Storage) -> Option<&mut [f64]> {
        match s {
            Storage::F64(a) => Arc::get_mut(a),
            Storage::F64One(v) => Some(std::slice::from_mut(v)),
            _ => None,
        }
    }
    #[inline(always)]
    fn wrap(a: Arc<[f64]>) -> Storage {
        Storage::F64(a)
    }
    #[inline(always)]
    fn wrap_one(v: f64) -> Storage {
        Storage::F64One(v)
    }
}
