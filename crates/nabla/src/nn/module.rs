//! The module system: a model is a plain struct; `#[derive(Module)]` lists its parameters.

use crate::{DType, Tensor};

/// What a visited tensor is to its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Trained by the optimiser (weights, biases).
    Trainable,
    /// State that is saved and loaded but not trained (batch-norm running statistics).
    Buffer,
}

/// Joins a parameter path: `join("encoder", "weight") == "encoder.weight"`, `join("", "w") == "w"`.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A part of a model that owns named tensors: layers, and any struct of layers.
///
/// Derive it: every field is visited under its name (tensors are parameters, nested modules
/// recurse, `Vec`s index their elements, numbers and strings are ignored); `#[module(skip)]` skips
/// a field and `#[module(buffer)]` marks a tensor as non-trained state.
///
/// ```
/// use nabla::nn::{Linear, Module, Forward};
/// use nabla::{rand::SeedableRng, Tensor, DType};
///
/// #[derive(Module)]
/// struct Mlp {
///     hidden: Linear,
///     out: Linear,
///     #[module(skip)]
///     name: &'static str,
/// }
///
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let mlp = Mlp { hidden: Linear::new(4, 8, &mut rng), out: Linear::new(8, 2, &mut rng), name: "mlp" };
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]);
/// assert_eq!(mlp.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
/// ```
pub trait Module {
    /// Calls `f(name, tensor, kind)` for every tensor, names prefixed by `prefix`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind));

    /// Like [`visit`](Module::visit), with mutable access (optimisers, loading, dtype changes).
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind));

    /// Switches between training and evaluation behaviour (dropout, batch norm). Layers without
    /// such behaviour ignore it; derived modules pass it to their fields.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// Training mode (the default for new layers).
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode: dropout off, batch norm uses running statistics.
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// The trainable parameters, in visiting order.
    fn parameters(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.visit("", &mut |_, t, k| {
            if k == ParamKind::Trainable {
                out.push(t.clone())
            }
        });
        out
    }

    /// The trainable parameters with their dotted names.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, t, k| {
            if k == ParamKind::Trainable {
                out.push((n.to_string(), t.clone()))
            }
        });
        out
    }

    /// Every tensor (parameters and buffers) with its name and kind: what a checkpoint stores.
    fn named_tensors(&self) -> Vec<(String, Tensor, ParamKind)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, t, k| out.push((n.to_string(), t.clone(), k)));
        out
    }

    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, t, k| {
            if k == ParamKind::Trainable {
                n += t.numel()
            }
        });
        n
    }

    /// Replaces the trainable parameters, in visiting order, with `values` (as new variables).
    ///
    /// # Panics
    /// If the count or a shape differs.
    fn set_parameters(&mut self, values: &[Tensor]) {
        let mut i = 0;
        self.visit_mut("", &mut |n, t, k| {
            if k != ParamKind::Trainable {
                return;
            }
            let v = values.get(i).unwrap_or_else(|| {
                panic!(
                    "set_parameters: only {} values for more parameters (at {n})",
                    values.len()
                )
            });
            if v.shape() != t.shape() {
                panic!(
                    "set_parameters: {n} has shape {} but the value has {}",
                    t.shape(),
                    v.shape()
                );
            }
            *t = v.clone();
            i += 1;
        });
        if i != values.len() {
            panic!("set_parameters: {} values for {i} parameters", values.len());
        }
    }

    /// Converts every tensor to `dtype` (parameters stay trainable variables).
    fn to_dtype(&mut self, dtype: DType) {
        self.visit_mut("", &mut |_, t, k| {
            let v = t.detach().to_dtype(dtype);
            *t = if k == ParamKind::Trainable {
                v.variable()
            } else {
                v
            };
        });
    }
}

/// A module applied to one tensor.
pub trait Forward {
    /// Applies the module.
    fn forward(&self, x: &Tensor) -> Tensor;
}

/// A module that maps one tensor to one tensor, storable in a [`Sequential`].
pub trait Layer: Module + Forward + Send + Sync {}
impl<T: Module + Forward + Send + Sync> Layer for T {}

impl Module for Tensor {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(prefix, self, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(prefix, self, ParamKind::Trainable);
    }
}

impl<M: Module> Module for Option<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        if let Some(m) = self {
            m.visit(prefix, f);
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        if let Some(m) = self {
            m.visit_mut(prefix, f);
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(m) = self {
            m.set_training(training);
        }
    }
}

impl<M: Module> Module for Vec<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        for (i, m) in self.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_mut(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.iter_mut().for_each(|m| m.set_training(training));
    }
}

impl<M: Module, const N: usize> Module for [M; N] {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        for (i, m) in self.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_mut(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.iter_mut().for_each(|m| m.set_training(training));
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        (**self).visit(prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        (**self).visit_mut(prefix, f);
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training);
    }
}

impl<M: Forward + ?Sized> Forward for Box<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        (**self).forward(x)
    }
}

macro_rules! no_params {
    ($($t:ty),*) => {$(
        impl Module for $t {
            fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
            fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
        }
    )*};
}
no_params!(
    f32,
    f64,
    usize,
    u64,
    u32,
    i64,
    i32,
    bool,
    String,
    &'static str,
    DType,
    ()
);

/// Layers applied in order; parameters are named by position (`"0.weight"`, ...).
///
/// ```
/// use nabla::nn::{Forward, Linear, Module, Relu, Sequential};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let net = Sequential::new()
///     .add(Linear::new(3, 4, &mut rng))
///     .add(Relu)
///     .add(Linear::new(4, 1, &mut rng));
/// let y = net.forward(&Tensor::ones([5, 3], DType::F32));
/// assert_eq!(y.dims(), &[5, 1]);
/// assert_eq!(net.parameters().len(), 4);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// An empty sequence.
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }
    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }
    /// Appends a boxed layer.
    pub fn push(&mut self, layer: Box<dyn Layer>) {
        self.layers.push(layer);
    }
    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        self.layers.visit(prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        self.layers.visit_mut(prefix, f);
    }
    fn set_training(&mut self, training: bool) {
        self.layers.set_training(training);
    }
}

impl Forward for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward(&y);
        }
        y
    }
}
