//! Property tests of the indexing operations: values against naive reference loops over random
//! shapes, axes and indices (with repeats and size-1 dimensions), and first- and second-order
//! derivatives (reverse and forward mode) against finite differences.

use nabla::rand::SeedableRng;
use nabla::testing::{check_grad, check_grad2};
use nabla::{DType, Indices, Tensor};
use proptest::prelude::*;
use proptest::sample::Index;

/// Draws small numbers from a pool of proptest indices, so that every choice shrinks.
#[derive(Clone, Debug)]
struct Pick {
    raw: Vec<Index>,
    pos: usize,
}

impl Pick {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        let v = self.raw[self.pos % self.raw.len()].index(n);
        self.pos += 1;
        v
    }
    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn indices(&mut self, bound: usize, shape: &[usize]) -> Indices {
        let n: usize = shape.iter().product();
        Indices::new((0..n).map(|_| self.below(bound)).collect(), shape)
    }
}

fn case() -> impl Strategy<Value = (Vec<usize>, Pick, u64, bool)> {
    (
        prop::collection::vec(1usize..=4, 1..=3),
        prop::collection::vec(any::<Index>(), 64),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(dims, raw, seed, strided)| (dims, Pick { raw, pos: 0 }, seed, strided))
}

/// A random f64 tensor of shape `dims`; non-contiguous (a permuted view) when `strided`.
fn randn(dims: &[usize], seed: u64, strided: bool) -> Tensor {
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(seed);
    if !strided || dims.len() < 2 {
        return Tensor::randn(dims, DType::F64, &mut rng);
    }
    let rev: Vec<usize> = dims.iter().rev().copied().collect();
    let perm: Vec<usize> = (0..dims.len()).rev().collect();
    Tensor::randn(rev, DType::F64, &mut rng).permute(&perm)
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut c = vec![0; dims.len()];
    for i in (0..dims.len()).rev() {
        c[i] = flat % dims[i];
        flat /= dims[i];
    }
    c
}

fn ravel(c: &[usize], dims: &[usize]) -> usize {
    c.iter().zip(strides(dims)).map(|(a, s)| a * s).sum()
}

fn with_axis(c: &[usize], axis: usize, v: usize) -> Vec<usize> {
    let mut c = c.to_vec();
    c[axis] = v;
    c
}

fn assert_close(got: &Tensor, want: &[f64]) {
    let g = got.to_vec::<f64>();
    assert_eq!(g.len(), want.len());
    for (k, (a, b)) in g.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "element {k}: {a} vs {b}"
        );
    }
}

/// The signed axis to pass (negative half the time) and its normalised value.
fn axis_of(p: &mut Pick, rank: usize) -> (isize, usize) {
    let a = p.below(rank);
    let signed = if p.below(2) == 0 {
        a as isize
    } else {
        a as isize - rank as isize
    };
    (signed, a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn index_select_and_index_add_match_loops((dims, mut p, seed, strided) in case()) {
        let (axis, a) = axis_of(&mut p, dims.len());
        let m = p.between(0, 5);
        let index = p.indices(dims[a], &[m]);
        let x = randn(&dims, seed, strided);
        let xv = x.to_vec::<f64>();
        let mut od = dims.clone();
        od[a] = m;
        // index_select
        let y = x.index_select(axis, &index);
        prop_assert_eq!(y.dims(), od.as_slice());
        let n_out: usize = od.iter().product();
        let want: Vec<f64> = (0..n_out)
            .map(|f| {
                let c = unravel(f, &od);
                xv[ravel(&with_axis(&c, a, index.as_slice()[c[a]]), &dims)]
            })
            .collect();
        assert_close(&y, &want);
        // index_add, duplicates accumulate
        let src = randn(&od, seed ^ 1, strided);
        let sv = src.to_vec::<f64>();
        let mut want = xv.clone();
        for (f, s) in sv.iter().enumerate() {
            let c = unravel(f, &od);
            want[ravel(&with_axis(&c, a, index.as_slice()[c[a]]), &dims)] += s;
        }
        assert_close(&x.index_add(axis, &index, &src), &want);
        // f32 agrees
        let y32 = x.to_dtype(DType::F32).index_add(axis, &index, &src.to_dtype(DType::F32));
        for (g, w) in y32.to_vec::<f64>().iter().zip(&want) {
            prop_assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()));
        }
    }

    #[test]
    fn gather_and_scatter_add_match_loops((dims, mut p, seed, strided) in case()) {
        let r = dims.len();
        let (axis, a) = axis_of(&mut p, r);
        let idims: Vec<usize> =
            (0..r).map(|d| if d == a { p.between(1, 5) } else { p.between(1, dims[d]) }).collect();
        let index = p.indices(dims[a], &idims);
        let x = randn(&dims, seed, strided);
        let xv = x.to_vec::<f64>();
        // gather
        let y = x.gather(axis, &index);
        prop_assert_eq!(y.dims(), idims.as_slice());
        let want: Vec<f64> = (0..index.len())
            .map(|f| {
                let c = unravel(f, &idims);
                xv[ravel(&with_axis(&c, a, index.as_slice()[f]), &dims)]
            })
            .collect();
        assert_close(&y, &want);
        // scatter_add with a src at least as large as the index
        let sdims: Vec<usize> = idims.iter().map(|&d| d + p.below(2)).collect();
        let src = randn(&sdims, seed ^ 2, strided);
        let sv = src.to_vec::<f64>();
        let mut want = xv.clone();
        for (f, &k) in index.as_slice().iter().enumerate() {
            let c = unravel(f, &idims);
            want[ravel(&with_axis(&c, a, k), &dims)] += sv[ravel(&c, &sdims)];
        }
        assert_close(&x.scatter_add(axis, &index, &src), &want);
    }

    #[test]
    fn one_hot_argmax_and_masked_fill_match_loops((dims, mut p, _seed, strided) in case()) {
        let r = dims.len();
        // one_hot
        let classes = p.between(1, 4);
        let labels = p.indices(classes, &dims);
        let oh = Tensor::one_hot(&labels, classes, DType::F64);
        let mut od = dims.clone();
        od.push(classes);
        prop_assert_eq!(oh.dims(), od.as_slice());
        let want: Vec<f64> = (0..oh.numel())
            .map(|f| if labels.as_slice()[f / classes] == f % classes { 1.0 } else { 0.0 })
            .collect();
        assert_close(&oh, &want);
        // argmax / argmin on values with many ties
        let n: usize = dims.iter().product();
        let vals: Vec<f64> = (0..n).map(|_| p.below(3) as f64).collect();
        let x = Tensor::from_vec(vals.clone(), dims.as_slice());
        let x = if strided { x.t().contiguous().t() } else { x };
        let (axis, a) = axis_of(&mut p, r);
        let keepdim = p.below(2) == 1;
        let mut kd = dims.clone();
        kd[a] = 1;
        for is_max in [true, false] {
            let got = if is_max { x.argmax(axis, keepdim) } else { x.argmin(axis, keepdim) };
            let want: Vec<usize> = (0..n / dims[a])
                .map(|f| {
                    let c = unravel(f, &kd);
                    let mut best = 0;
                    for k in 1..dims[a] {
                        let v = vals[ravel(&with_axis(&c, a, k), &dims)];
                        let b = vals[ravel(&with_axis(&c, a, best), &dims)];
                        if (is_max && v > b) || (!is_max && v < b) {
                            best = k;
                        }
                    }
                    best
                })
                .collect();
            prop_assert_eq!(got.to_vec(), want);
            let shape: Vec<usize> =
                if keepdim { kd.clone() } else { dims.iter().enumerate().filter(|(d, _)| *d != a).map(|(_, &s)| s).collect() };
            prop_assert_eq!(got.dims(), shape.as_slice());
        }
        let first = |is_max: bool| {
            let e = if is_max { vals.iter().cloned().fold(f64::MIN, f64::max) } else { vals.iter().cloned().fold(f64::MAX, f64::min) };
            vals.iter().position(|&v| v == e).unwrap()
        };
        prop_assert_eq!((x.argmax_all(), x.argmin_all()), (first(true), first(false)));
        // masked_fill with a mask that broadcasts (some dims 1, maybe fewer leading dims)
        let lead = p.below(r);
        let mdims: Vec<usize> = dims[lead..].iter().map(|&d| if p.below(2) == 0 { 1 } else { d }).collect();
        let mask = p.indices(2, &mdims).to_tensor(DType::F64);
        let mv = mask.to_vec::<f64>();
        let got = x.masked_fill(&mask, -7.5);
        let want: Vec<f64> = (0..n)
            .map(|f| {
                let c = unravel(f, &dims);
                let mc: Vec<usize> = c[lead..].iter().zip(&mdims).map(|(&i, &d)| if d == 1 { 0 } else { i }).collect();
                if mv[ravel(&mc, &mdims)] != 0.0 { -7.5 } else { vals[f] }
            })
            .collect();
        assert_close(&got, &want);
    }

    #[test]
    fn derivatives_of_index_select_and_index_add((dims, mut p, seed, strided) in case()) {
        let (axis, a) = axis_of(&mut p, dims.len());
        let m = p.between(1, 4);
        let index = p.indices(dims[a], &[m]);
        let x = randn(&dims, seed, strided);
        let mut od = dims.clone();
        od[a] = m;
        let src = randn(&od, seed ^ 3, false);
        let sel = |xs: &[Tensor]| xs[0].index_select(axis, &index);
        check_grad(sel, std::slice::from_ref(&x)).unwrap();
        check_grad2(|xs: &[Tensor]| sel(xs).square(), std::slice::from_ref(&x)).unwrap();
        let add = |xs: &[Tensor]| xs[0].index_add(axis, &index, &xs[1]);
        let inputs = [x, src];
        check_grad(add, &inputs).unwrap();
        check_grad2(|xs: &[Tensor]| add(xs).square() * &xs[0], &inputs).unwrap();
    }

    #[test]
    fn derivatives_of_gather_and_scatter_add((dims, mut p, seed, strided) in case()) {
        let r = dims.len();
        let (axis, a) = axis_of(&mut p, r);
        let idims: Vec<usize> =
            (0..r).map(|d| if d == a { p.between(1, 4) } else { p.between(1, dims[d]) }).collect();
        let index = p.indices(dims[a], &idims);
        let x = randn(&dims, seed, strided);
        let gat = |xs: &[Tensor]| xs[0].gather(axis, &index);
        check_grad(gat, std::slice::from_ref(&x)).unwrap();
        check_grad2(|xs: &[Tensor]| gat(xs).square(), std::slice::from_ref(&x)).unwrap();
        let sdims: Vec<usize> = idims.iter().map(|&d| d + p.below(2)).collect();
        let src = randn(&sdims, seed ^ 4, false);
        let sca = |xs: &[Tensor]| xs[0].scatter_add(axis, &index, &xs[1]);
        let inputs = [x, src];
        check_grad(sca, &inputs).unwrap();
        check_grad2(|xs: &[Tensor]| sca(xs).square() * &xs[0], &inputs).unwrap();
    }

    #[test]
    fn derivatives_of_masked_fill((dims, mut p, seed, strided) in case()) {
        let mdims: Vec<usize> = dims.iter().map(|&d| if p.below(2) == 0 { 1 } else { d }).collect();
        let mask = p.indices(2, &mdims).to_tensor(DType::F64);
        let x = randn(&dims, seed, strided);
        let f = |xs: &[Tensor]| xs[0].masked_fill(&mask, 0.25);
        check_grad(f, std::slice::from_ref(&x)).unwrap();
        check_grad2(|xs: &[Tensor]| f(xs).square() * &xs[0], std::slice::from_ref(&x)).unwrap();
    }
}

/// An embedding lookup followed by a loss over the gathered label scores, differentiated to
/// second order: the ops compose inside one program.
#[test]
fn embedding_and_label_gather_compose_to_second_order() {
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(7);
    let table = Tensor::randn([5, 3], DType::F64, &mut rng);
    let ids = Indices::from(vec![4, 1, 4, 0]);
    let labels = Indices::new(vec![2, 0, 2, 1], [4, 1]);
    let loss = |xs: &[Tensor]| {
        let e = xs[0].index_select(0, &ids);
        let logp = e.log_softmax(-1);
        logp.gather(1, &labels).sum().neg()
    };
    check_grad(loss, std::slice::from_ref(&table)).unwrap();
    check_grad2(loss, std::slice::from_ref(&table)).unwrap();
    // the one-hot form of the same loss agrees
    let oh = Tensor::one_hot(&labels.flatten(), 3, DType::F64);
    let alt = (table.index_select(0, &ids).log_softmax(-1) * &oh)
        .sum()
        .neg();
    assert!((loss(std::slice::from_ref(&table)).item() - alt.item()).abs() < 1e-12);
}
