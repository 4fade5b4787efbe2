//! The Differentiable Neural Computer (Graves et al. 2016, Nature, Methods) and its sparse variant
//! (Rae et al. 2016).
//!
//! [`Dnc`] is the model (LSTM controller, `N x W` memory, `R` read heads, one write head). Each
//! memory operation is also a public function of batched tensors ([`content_weighting`],
//! [`retention`], [`usage`], [`allocation_weighting`], [`write_weighting`], [`write_memory`],
//! [`precedence`], [`link_matrix`], [`directional_weightings`], [`read_weighting`],
//! [`read_memory`]), built from differentiable nabla operations. The dense link matrix costs `N²`
//! per step; with `DncConfig::sparse = Some(K)` the model uses the sparse operations of
//! [`SparseLinks`] and [`sparse_content_weighting`], whose cost grows linearly in `N`.

mod addressing;
mod model;
mod sparse;

pub use addressing::{
    EPS, allocation_weighting, content_weighting, cosine_similarity, directional_weightings,
    link_matrix, oneplus, precedence, read_memory, read_weighting, retention, usage, usage_order,
    write_memory, write_weighting,
};
pub use model::{Dnc, DncConfig, DncState, Interface, Links, memory_step, split_interface};
pub use sparse::{
    SparseLinks, keep_top_k, sparse_allocation_weighting, sparse_content_weighting, top_k_indices,
};
