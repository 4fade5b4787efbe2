//! [`OpSlot`]: where a graph node keeps its operation.
//!
//! Most operations are empty structs or hold a number or two (`x * 0.5` keeps `0.5`). Boxing those
//! would make every recorded scalar operation allocate a few bytes besides its tensor, and in
//! simulators those tiny blocks, freed in bursts, scatter the graph through the heap (with glibc, an
//! rk4-pendulum gradient was 10–15 % slower for it). Operations of up to 16 bytes, 8-byte aligned and
//! without drop glue, are stored inline; the others are boxed.

use super::Op;
use std::mem::{MaybeUninit, align_of, needs_drop, size_of};
use std::ops::Deref;

/// Storage for an operation: inline when small and plain, else on the heap.
pub(crate) enum OpSlot {
    Inline {
        words: MaybeUninit<[u64; 2]>,
        /// Turns a pointer to `words` into a pointer to the operation stored there.
        as_dyn: fn(*const MaybeUninit<[u64; 2]>) -> *const dyn Op,
    },
    Boxed(Box<dyn Op>),
}

fn inline_as_dyn<O: Op>(p: *const MaybeUninit<[u64; 2]>) -> *const dyn Op {
    p.cast::<O>()
}

impl OpSlot {
    #[inline]
    pub(crate) fn new<O: Op>(op: O) -> OpSlot {
        if size_of::<O>() <= size_of::<[u64; 2]>()
            && align_of::<O>() <= align_of::<u64>()
            && !needs_drop::<O>()
        {
            let mut words = MaybeUninit::<[u64; 2]>::uninit();
            // SAFETY: `words` is large and aligned enough for an `O` (checked above).
            unsafe { words.as_mut_ptr().cast::<O>().write(op) };
            OpSlot::Inline {
                words,
                as_dyn: inline_as_dyn::<O>,
            }
        } else {
            OpSlot::Boxed(Box::new(op))
        }
    }
}

impl Deref for OpSlot {
    type Target = dyn Op;
    #[inline]
    fn deref(&self) -> &dyn Op {
        match self {
            // SAFETY: `words` holds the `O` written by `new`, whose `as_dyn` this is; `O` has no
            // drop glue, so moving the bytes moved the value; the borrow of `self` bounds the
            // reference's lifetime.
            OpSlot::Inline { words, as_dyn } => unsafe { &*as_dyn(words) },
            OpSlot::Boxed(b) => &**b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpSlot;
    use crate::Tensor;
    use crate::autodiff::{InputGrads, Op};

    struct Small(f64);
    impl Op for Small {
        fn name(&self) -> &str {
            if self.0 > 0.0 { "small+" } else { "small-" }
        }
        fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
            smallvec::smallvec![Some(g.scale(self.0))]
        }
        fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
            t[0].as_ref().unwrap().scale(self.0)
        }
    }

    struct Big(Vec<f64>);
    impl Op for Big {
        fn name(&self) -> &str {
            "big"
        }
        fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
            smallvec::smallvec![Some(g.scale(self.0.iter().sum()))]
        }
        fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
            t[0].as_ref().unwrap().clone()
        }
    }

    #[test]
    fn small_ops_inline_others_boxed_both_work_after_moves() {
        let slots = vec![OpSlot::new(Small(3.0)), OpSlot::new(Big(vec![1.0, 2.0]))];
        assert!(matches!(slots[0], OpSlot::Inline { .. }));
        assert!(matches!(slots[1], OpSlot::Boxed(_)));
        let moved: Vec<OpSlot> = slots.into_iter().collect();
        let g = Tensor::scalar(2.0f64);
        assert_eq!(moved[0].name(), "small+");
        assert_eq!(
            moved[0].vjp(&[], &g, &g, &[true])[0]
                .as_ref()
                .unwrap()
                .item(),
            6.0
        );
        assert_eq!(
            moved[1].vjp(&[], &g, &g, &[true])[0]
                .as_ref()
                .unwrap()
                .item(),
            6.0
        );
    }
}
