//! Layout: shape, strides and offset into a storage buffer. Views (transpose, slice, broadcast,
//! reshape of contiguous data) are new layouts over the same buffer.

use super::shape::Shape;
use smallvec::SmallVec;

pub(crate) type Strides = SmallVec<[usize; 4]>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub shape: Shape,
    pub strides: Strides,
    pub offset: usize,
}

impl Layout {
    #[inline]
    pub fn contiguous(shape: Shape) -> Layout {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// True when the elements are laid out densely in row-major order (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.shape.rank()).rev() {
            let d = self.shape[i];
            if d != 1 && self.strides[i] != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// The contiguous range `offset..offset+numel` when the layout is contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        if self.is_contiguous() {
            Some(self.offset..self.offset + self.numel())
        } else {
            None
        }
    }

    /// Strides for viewing this layout broadcast to `target` (stride 0 on broadcast dims).
    /// Assumes `target` is a valid broadcast of this shape.
    pub fn broadcast_strides(&self, target: &Shape) -> Strides {
        let rank = target.rank();
        let off = rank - self.shape.rank();
        let mut s: Strides = SmallVec::from_elem(0, rank);
        for i in 0..self.shape.rank() {
            if self.shape[i] == target[i + off] {
                s[i + off] = self.strides[i];
            }
        }
        s
    }

    pub fn permuted(&self, perm: &[usize]) -> Layout {
        Layout {
            shape: Shape(perm.iter().map(|&p| self.shape[p]).collect()),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        }
    }

    pub fn narrowed(&self, axis: usize, start: usize, len: usize) -> Layout {
        let mut l = self.clone();
        l.offset += start * self.strides[axis];
        l.shape.0[axis] = len;
        l
    }

    /// Every `step`-th of `len` elements along `axis` from `start` (a strided view).
    pub fn stepped(&self, axis: usize, start: usize, len: usize, step: usize) -> Layout {
        let mut l = self.narrowed(axis, start, len);
        l.strides[axis] *= step;
        l
    }

    /// Strides for a reshape that needs no copy, if one exists (NumPy's rule: each group of merged or
    /// split dimensions must be contiguous among themselves).
    pub fn reshaped(&self, new_shape: &Shape) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: new_shape.clone(),
                strides: new_shape.contiguous_strides(),
                offset: self.offset,
            });
        }
        // Drop size-1 dims of the old layout, then match groups.
        let old: SmallVec<[(usize, usize); 4]> = self
            .shape
            .iter()
            .zip(self.strides.iter())
            .filter(|(d, _)| **d != 1)
            .map(|(d, s)| (*d, *s))
            .collect();
        let mut new_strides: Strides = SmallVec::from_elem(0, new_shape.rank());
        let (mut oi, mut ni) = (0usize, 0usize);
        while ni < new_shape.rank() {
            if new_shape[ni] == 1 {
                new_strides[ni] = 0;
                ni += 1;
                continue;
            }
            if oi >= old.len() {
                return None;
            }
            // grow a group on each side until the products match
            let (mut op, mut np) = (old[oi].0, new_shape[ni]);
            let og_start = oi;
            let ng_start = ni;
            while op != np {
                if op < np {
                    oi += 1;
                    if oi >= old.len() {
                        return None;
                    }
                    op *= old[oi].0;
                } else {
                    ni += 1;
                    if ni >= new_shape.rank() {
                        return None;
                    }
                    np *= new_shape[ni];
                }
            }
            // the old group must be contiguous within itself
            for k in og_start..oi {
                if old[k].1 != old[k + 1].1 * old[k + 1].0 {
                    return None;
                }
            }
            // assign strides to the new group from its innermost dim
            let mut stride = old[oi].1;
            for k in (ng_start..=ni).rev() {
                new_strides[k] = stride;
                stride *= new_shape[k];
            }
            oi += 1;
            ni += 1;
        }
        if oi != old.len() {
            return None;
        }
        Some(Layout {
            shape: new_shape.clone(),
            strides: new_strides,
            offset: self.offset,
        })
    }
}

/// Calls `f(offset_a, offset_b, row)` for every row of the innermost dimension of `shape` (of
/// length `shape[rank - 1]`, strides `sa[rank - 1]` and `sb[rank - 1]`) in row-major order, with
/// each operand's offset at the row's start, the row's length and its two strides. Size-1 dimensions and
/// dimensions that continue the innermost one in both operands are merged into it first, so rows
/// are as long as the layouts allow. `shape` must have rank at least 1 and no zero dimension.
pub(crate) fn for_each_row2(
    shape: &[usize],
    sa: &[usize],
    oa: usize,
    sb: &[usize],
    ob: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    // merge dimensions from the innermost outwards while both operands stay regular
    let mut dims: SmallVec<[(usize, usize, usize); 6]> = SmallVec::new();
    for d in (0..shape.len()).rev() {
        if shape[d] == 1 {
            continue;
        }
        if let Some(last) = dims.last_mut()
            && sa[d] == last.1 * last.0
            && sb[d] == last.2 * last.0
        {
            last.0 *= shape[d];
            continue;
        }
        dims.push((shape[d], sa[d], sb[d]));
    }
    if dims.is_empty() {
        dims.push((1, 1, 1));
    }
    dims.reverse();
    let rank = dims.len();
    let (inner, ia, ib) = dims[rank - 1];
    let mut idx: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
    let (mut pa, mut pb) = (oa, ob);
    loop {
        f(pa, pb, inner, ia, ib);
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            pa += dims[d].1;
            pb += dims[d].2;
            if idx[d] < dims[d].0 {
                break;
            }
            pa -= dims[d].1 * dims[d].0;
            pb -= dims[d].2 * dims[d].0;
            idx[d] = 0;
        }
    }
}

/// Calls `f(offset_a, offset_b)` for every index of `shape` in row-major order, given each operand's
/// strides and starting offsets. The innermost dimension runs in a tight loop.
#[inline]
pub(crate) fn for_each_offset2(
    shape: &[usize],
    sa: &[usize],
    oa: usize,
    sb: &[usize],
    ob: usize,
    mut f: impl FnMut(usize, usize),
) {
    let rank = shape.len();
    if rank == 0 {
        f(oa, ob);
        return;
    }
    if shape.contains(&0) {
        return;
    }
    let inner = shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut idx: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank);
    let (mut pa, mut pb) = (oa, ob);
    loop {
        let (mut xa, mut xb) = (pa, pb);
        for _ in 0..inner {
            f(xa, xb);
            xa += ia;
            xb += ib;
        }
        // advance the outer index
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            pa += sa[d];
            pb += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            pa -= sa[d] * shape[d];
            pb -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// Calls `f(offset)` for every index of a layout in row-major order.
#[inline]
pub(crate) fn for_each_offset(l: &Layout, mut f: impl FnMut(usize)) {
    if let Some(r) = l.contiguous_range() {
        r.for_each(f);
        return;
    }
    for_each_offset2(&l.shape, &l.strides, l.offset, &l.strides, 0, |a, _| f(a));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_of_transposed_needs_copy() {
        let l = Layout::contiguous(Shape::from([2, 3])).permuted(&[1, 0]);
        assert!(l.reshaped(&Shape::from([6])).is_none());
        assert!(l.reshaped(&Shape::from([3, 2, 1])).is_some());
    }

    #[test]
    fn reshape_splits_a_strided_dim() {
        // a [4, 6] matrix sliced to columns 0..3 => [4, 3] with strides [6, 1]; split rows 4 = 2x2
        let l = Layout::contiguous(Shape::from([4, 6])).narrowed(1, 0, 3);
        let r = l.reshaped(&Shape::from([2, 2, 3])).unwrap();
        assert_eq!(r.strides.as_slice(), &[12, 6, 1]);
        assert!(l.reshaped(&Shape::from([12])).is_none());
    }

    #[test]
    fn offsets_in_row_major_order() {
        let l = Layout::contiguous(Shape::from([2, 3])).permuted(&[1, 0]);
        let mut v = vec![];
        for_each_offset(&l, |o| v.push(o));
        assert_eq!(v, vec![0, 3, 1, 4, 2, 5]);
    }
}
