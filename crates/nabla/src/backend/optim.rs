//! The optimisers' update rules as data: which rule, with its hyperparameters for this step. A
//! backend runs each as one elementwise kernel over a parameter, its gradient and its buffers.

/// One optimiser step's elementwise update of a parameter `p` (in place), given its gradient and
/// the optimiser's per-parameter buffers (in place).
#[derive(Clone, Copy, Debug)]
pub(crate) enum UpdateRule {
    /// Buffers: none, or `[momentum]`.
    Sgd(SgdRule),
    /// Buffers: `[exp_avg, exp_avg_sq]`.
    Adam(AdamRule),
    /// Buffers: `[square_avg]`.
    RmsProp(RmsRule),
    /// Buffers: `[sum]`.
    Adagrad(AdagradRule),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SgdRule {
    pub(crate) lr: f64,
    pub(crate) momentum: f64,
    pub(crate) nesterov: bool,
    pub(crate) wd: f64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamRule {
    pub(crate) lr: f64,
    pub(crate) b1: f64,
    pub(crate) b2: f64,
    pub(crate) eps: f64,
    pub(crate) wd: f64,
    pub(crate) decoupled: bool,
    pub(crate) bc1: f64,
    pub(crate) bc2_sqrt: f64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RmsRule {
    pub(crate) lr: f64,
    pub(crate) alpha: f64,
    pub(crate) eps: f64,
    pub(crate) wd: f64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct AdagradRule {
    pub(crate) lr: f64,
    pub(crate) eps: f64,
    pub(crate) wd: f64,
}
