//! Where a tensor's data lives.

use std::fmt;

/// The device that holds a tensor's storage. Only the CPU exists today; the variant is part of every
/// tensor so that another storage kind (CUDA) can be added without changing the API.
///
/// ```
/// use nabla::{DType, Device, Tensor};
/// assert_eq!(Tensor::ones([3], DType::F32).device(), Device::Cpu);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory; kernels run on the CPU (rayon threads for large tensors).
    #[default]
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
