//! Property tests of the shape operations and matrix products: forward values against index
//! arithmetic and naive loops, reverse and forward mode against central finite differences, and
//! second order, over random shapes, views (non-contiguous, broadcast) and axes.

mod props_common;

use nabla::rand::RngExt;
use nabla::rand::rngs::StdRng;
use nabla::{DType, Tensor};
use props_common::*;
use proptest::prelude::*;

const CASES: u32 = 256;

/// A random permutation of `0..n`.
fn permutation(r: &mut StdRng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, r.random_range(0..=i));
    }
    p
}

/// A random shape with `n` elements: n's prime factors spread over up to four dimensions, with
/// size-1 dimensions sprinkled in.
fn factor_shape(r: &mut StdRng, mut n: usize) -> Vec<usize> {
    let mut primes = vec![];
    let mut p = 2;
    while n > 1 {
        while n.is_multiple_of(p) {
            primes.push(p);
            n /= p;
        }
        p += 1;
    }
    let rank = r.random_range(primes.len().min(1)..=4);
    let mut dims = vec![1; rank];
    for q in primes {
        let k = r.random_range(0..rank);
        dims[k] *= q;
    }
    dims
}

/// `data` (shape `s`) permuted: result dimension `i` is input dimension `perm[i]`.
fn ref_permute(data: &[f64], s: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let os: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let v = (0..data.len())
        .map(|i| {
            let idx = unravel(i, &os);
            let mut src = vec![0; s.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = idx[k];
            }
            data[ravel(&src, s)]
        })
        .collect();
    (os, v)
}

/// The elements `start..start + len` along `axis`.
fn ref_narrow(
    data: &[f64],
    s: &[usize],
    axis: usize,
    start: usize,
    len: usize,
) -> (Vec<usize>, Vec<f64>) {
    let mut os = s.to_vec();
    os[axis] = len;
    let v = (0..numel(&os))
        .map(|i| {
            let mut idx = unravel(i, &os);
            idx[axis] += start;
            data[ravel(&idx, s)]
        })
        .collect();
    (os, v)
}

/// NumPy `matmul`, by loops.
fn ref_matmul(a: &Tensor, b: &Tensor) -> (Vec<usize>, Vec<f64>) {
    let (mut sa, mut sb) = (a.dims().to_vec(), b.dims().to_vec());
    let (da, db) = (a.to_vec::<f64>(), b.to_vec::<f64>());
    let (va, vb) = (sa.len() == 1, sb.len() == 1);
    if va {
        sa.insert(0, 1);
    }
    if vb {
        sb.push(1);
    }
    let (ra, rb) = (sa.len(), sb.len());
    let (m, k, n) = (sa[ra - 2], sa[ra - 1], sb[rb - 1]);
    assert_eq!(k, sb[rb - 2]);
    let batch = broadcast_shape(&sa[..ra - 2], &sb[..rb - 2]);
    let mut os = batch.clone();
    os.extend([m, n]);
    let v = (0..numel(&os))
        .map(|o| {
            let idx = unravel(o, &os);
            let (bi, i, j) = (&idx[..batch.len()], idx[batch.len()], idx[batch.len() + 1]);
            (0..k)
                .map(|x| {
                    let ia: Vec<usize> = bi.iter().copied().chain([i, x]).collect();
                    let ib: Vec<usize> = bi.iter().copied().chain([x, j]).collect();
                    bread(&da, &sa, &ia) * bread(&db, &sb, &ib)
                })
                .sum()
        })
        .collect();
    let mut out = batch;
    if !va {
        out.push(m);
    }
    if !vb {
        out.push(n);
    }
    (out, v)
}

/// Values of `op` at `xs` (plain, strided copies, f32) against `want`, then its derivatives.
fn check(
    name: &str,
    xs: &[Tensor],
    op: &dyn Fn(&[Tensor]) -> Tensor,
    s: &[usize],
    want: &[f64],
) -> R {
    assert_values(name, &op(xs), s, want, 1e-12)?;
    let st: Vec<Tensor> = xs.iter().map(strided).collect();
    assert_values(&format!("{name} (strided)"), &op(&st), s, want, 1e-12)?;
    let x32: Vec<Tensor> = xs.iter().map(|x| x.to_dtype(DType::F32)).collect();
    let y32 = op(&x32);
    prop_assert_eq!(y32.dtype(), DType::F32);
    assert_values(&format!("{name} (f32)"), &y32, s, want, 1e-5)?;
    grads12(name, op, xs)
}

fn val(r: &mut StdRng, s: &[usize]) -> Tensor {
    values(r, s, -2.0, 2.0, 0.0)
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Reshape of contiguous tensors (a view) and of non-contiguous views (a copy).
    #[test]
    fn reshape(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let data = x.to_vec::<f64>();
        let to = factor_shape(&mut r, numel(&s));
        let t2 = to.clone();
        check(&format!("reshape {s:?} -> {to:?}"), std::slice::from_ref(&x), &|xs| xs[0].reshape(t2.as_slice()), &to, &data)?;
        // a contiguous reshape shares the buffer: the result is contiguous, no copy needed
        prop_assert!(x.reshape(to.as_slice()).is_contiguous());
        // of a permuted view: row-major order of the view
        let perm = permutation(&mut r, s.len());
        let (_, pdata) = ref_permute(&data, &s, &perm);
        let p2 = perm.clone();
        let t2 = to.clone();
        check(&format!("permute {perm:?} then reshape {s:?} -> {to:?}"), std::slice::from_ref(&x),
            &|xs| xs[0].permute(&p2).reshape(t2.as_slice()), &to, &pdata)?;
        // of a narrowed view
        if !s.is_empty() {
            let axis = r.random_range(0..s.len());
            let start = r.random_range(0..s[axis]);
            let len = r.random_range(1..=s[axis] - start);
            let (_, ndata) = ref_narrow(&data, &s, axis, start, len);
            let to = factor_shape(&mut r, ndata.len());
            let t2 = to.clone();
            check(&format!("narrow({axis}, {start}, {len}) then reshape -> {to:?}"), std::slice::from_ref(&x),
                &|xs| xs[0].narrow(axis as isize, start, len).reshape(t2.as_slice()), &to, &ndata)?;
        }
        // of a broadcast view (stride 0): a copy unless the broadcast dimension stays whole
        let lead = r.random_range(1..=3);
        let mut bs = vec![lead];
        bs.extend(&s);
        let bdata = broadcast_data(&data, &s, &bs);
        let to = factor_shape(&mut r, bdata.len());
        let (b2, t2) = (bs.clone(), to.clone());
        check(&format!("broadcast_to {bs:?} then reshape -> {to:?}"), std::slice::from_ref(&x),
            &|xs| xs[0].broadcast_to(b2.as_slice()).reshape(t2.as_slice()), &to, &bdata)?;
        let mut split = vec![1, lead];
        split.extend(&s);
        split.push(1);
        let sp = split.clone();
        check("broadcast_to then split dims", std::slice::from_ref(&x),
            &|xs| xs[0].broadcast_to(b2.as_slice()).reshape(sp.as_slice()), &split, &bdata)?;
        let bad = numel(&s) + 1;
        let msg = panic_message(|| x.reshape([bad])).unwrap_or_default();
        prop_assert!(msg.starts_with(&format!("reshape: cannot reshape {} ({} elements) into [{bad}]", x.shape(), numel(&s))), "{}", msg);
    }

    #[test]
    fn permute(s in shape(0..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let perm = permutation(&mut r, s.len());
        let (os, want) = ref_permute(&x.to_vec::<f64>(), &s, &perm);
        check(&format!("permute {perm:?} of {s:?}"), std::slice::from_ref(&x), &|xs| xs[0].permute(&perm), &os, &want)?;
        // composed with its inverse: the identity
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        assert_same("permute inverse", &x.permute(&perm).permute(&inv), &x, 0.0)?;
        if s.len() >= 2 {
            let mut bad = perm.clone();
            bad[0] = bad[1];
            let msg = panic_message(|| x.permute(&bad)).unwrap_or_default();
            prop_assert!(msg.starts_with("permute: "), "{}", msg);
        }
    }

    /// `transpose(a, b)` (axes possibly negative) and `t()`.
    #[test]
    fn transpose_t(s in shape(0..=4, 4), a in -4isize..4, b in -4isize..4, seed in any::<u64>()) {
        let x = val(&mut rng(seed), &s);
        let rank = s.len() as isize;
        let data = x.to_vec::<f64>();
        if rank > 0 {
            let (a, b) = (a.rem_euclid(2 * rank) - rank, b.rem_euclid(2 * rank) - rank);
            let mut perm: Vec<usize> = (0..s.len()).collect();
            perm.swap(a.rem_euclid(rank) as usize, b.rem_euclid(rank) as usize);
            let (os, want) = ref_permute(&data, &s, &perm);
            check(&format!("transpose({a}, {b}) of {s:?}"), std::slice::from_ref(&x), &|xs| xs[0].transpose(a, b), &os, &want)?;
        }
        let mut perm: Vec<usize> = (0..s.len()).collect();
        if s.len() >= 2 {
            perm.swap(s.len() - 2, s.len() - 1);
        }
        let (os, want) = ref_permute(&data, &s, &perm);
        check(&format!("t of {s:?}"), std::slice::from_ref(&x), &|xs| xs[0].t(), &os, &want)?;
    }

    #[test]
    fn broadcast_to((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let full = broadcast_shape(&sa, &sb);
        let mut r = rng(seed);
        for from in [&sa, &sb] {
            let x = val(&mut r, from);
            let want = broadcast_data(&x.to_vec::<f64>(), from, &full);
            let name = format!("broadcast_to {from:?} -> {full:?}");
            check(&name, std::slice::from_ref(&x), &|xs| xs[0].broadcast_to(full.as_slice()), &full, &want)?;
            assert_values(&name, &x.expand(full.as_slice()), &full, &want, 0.0)?;
        }
        // a shape it cannot broadcast to
        if let Some(i) = full.iter().position(|&d| d > 1) {
            let mut bad = full.clone();
            bad[i] += 1;
            let x = val(&mut r, &full);
            let msg = panic_message(|| x.broadcast_to(bad.as_slice())).unwrap_or_default();
            prop_assert!(msg.starts_with("broadcast_to: "), "{}", msg);
        }
    }

    /// `squeeze`, `squeeze_all`, `unsqueeze` and `flatten`: new shapes, same row-major values.
    #[test]
    fn squeeze_unsqueeze_flatten(s in shape(0..=4, 3), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let data = x.to_vec::<f64>();
        let rank = s.len();
        let one = std::slice::from_ref(&x);
        // unsqueeze at any of rank + 1 places, written positive or negative
        let at = r.random_range(0..=rank);
        let ax = if r.random_bool(0.5) { at as isize } else { at as isize - rank as isize - 1 };
        let mut us = s.clone();
        us.insert(at, 1);
        check(&format!("unsqueeze({ax}) of {s:?}"), one, &|xs| xs[0].unsqueeze(ax), &us, &data)?;
        // squeeze of each size-1 dimension
        for i in (0..rank).filter(|&i| s[i] == 1) {
            let mut ss = s.clone();
            ss.remove(i);
            let ax = if r.random_bool(0.5) { i as isize } else { i as isize - rank as isize };
            check(&format!("squeeze({ax}) of {s:?}"), one, &|xs| xs[0].squeeze(ax), &ss, &data)?;
        }
        if let Some(i) = s.iter().position(|&d| d != 1) {
            let msg = panic_message(|| x.squeeze(i as isize)).unwrap_or_default();
            prop_assert!(msg.starts_with(&format!("squeeze: dimension {i} of {} has size", x.shape())), "{}", msg);
        }
        let sq: Vec<usize> = s.iter().copied().filter(|&d| d != 1).collect();
        check("squeeze_all", one, &|xs| xs[0].squeeze_all(), &sq, &data)?;
        // flatten start..=end
        if rank == 0 {
            check("flatten of 0-d", one, &|xs| xs[0].flatten(0, -1), &[1], &data)?;
        } else {
            let (a, b) = (r.random_range(0..rank), r.random_range(0..rank));
            let (a, b) = (a.min(b), a.max(b));
            let mut fs: Vec<usize> = s[..a].to_vec();
            fs.push(s[a..=b].iter().product());
            fs.extend_from_slice(&s[b + 1..]);
            let bn = b as isize - rank as isize;
            check(&format!("flatten({a}, {bn}) of {s:?}"), one, &|xs| xs[0].flatten(a as isize, bn), &fs, &data)?;
        }
    }

    /// `narrow` and `select` along any axis (negative included).
    #[test]
    fn narrow_select(s in shape(1..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let data = x.to_vec::<f64>();
        let rank = s.len();
        let axis = r.random_range(0..rank);
        let ax = if r.random_bool(0.5) { axis as isize } else { axis as isize - rank as isize };
        let start = r.random_range(0..s[axis]);
        let len = r.random_range(1..=s[axis] - start);
        let (os, want) = ref_narrow(&data, &s, axis, start, len);
        let one = std::slice::from_ref(&x);
        check(&format!("narrow({ax}, {start}, {len}) of {s:?}"), one, &|xs| xs[0].narrow(ax, start, len), &os, &want)?;
        let (mut os, want) = ref_narrow(&data, &s, axis, start, 1);
        os.remove(axis);
        check(&format!("select({ax}, {start}) of {s:?}"), one, &|xs| xs[0].select(ax, start), &os, &want)?;
        let msg = panic_message(|| x.narrow(ax, start, s[axis] - start + 1)).unwrap_or_default();
        prop_assert!(msg.starts_with("narrow: range "), "{}", msg);
    }

    /// `contiguous` of permuted, narrowed and broadcast views.
    #[test]
    fn contiguous(s in shape(1..=4, 4), seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let data = x.to_vec::<f64>();
        let perm = permutation(&mut r, s.len());
        let (os, want) = ref_permute(&data, &s, &perm);
        let one = std::slice::from_ref(&x);
        check("contiguous of permuted", one, &|xs| xs[0].permute(&perm).contiguous(), &os, &want)?;
        prop_assert!(x.permute(&perm).contiguous().is_contiguous());
        let mut big = vec![3];
        big.extend(&s);
        let want = broadcast_data(&data, &s, &big);
        check("contiguous of broadcast", one, &|xs| xs[0].broadcast_to(big.as_slice()).contiguous(), &big, &want)?;
        prop_assert!(x.broadcast_to(big.as_slice()).contiguous().is_contiguous());
        prop_assert!(strided(&x).contiguous().is_contiguous());
        assert_same("contiguous of contiguous", &x.contiguous(), &x, 0.0)?;
    }

    /// `concat` of 1..=3 tensors along any axis, and `stack` along a new one.
    #[test]
    fn concat_stack(s in shape(1..=4, 3), k in 1usize..=3, seed in any::<u64>()) {
        let mut r = rng(seed);
        let rank = s.len();
        let axis = r.random_range(0..rank);
        let ax = if r.random_bool(0.5) { axis as isize } else { axis as isize - rank as isize };
        let parts: Vec<Tensor> = (0..k)
            .map(|_| {
                let mut ps = s.clone();
                ps[axis] = r.random_range(1..=3);
                val(&mut r, &ps)
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.dims()[axis]).sum();
        let mut os = s.clone();
        os[axis] = total;
        let datas: Vec<Vec<f64>> = parts.iter().map(|p| p.to_vec::<f64>()).collect();
        let want: Vec<f64> = (0..numel(&os))
            .map(|i| {
                let mut idx = unravel(i, &os);
                let mut j = 0;
                while idx[axis] >= parts[j].dims()[axis] {
                    idx[axis] -= parts[j].dims()[axis];
                    j += 1;
                }
                datas[j][ravel(&idx, parts[j].dims())]
            })
            .collect();
        check(&format!("concat along {ax} of {k} parts of {s:?}"), &parts, &|xs| Tensor::concat(xs, ax), &os, &want)?;
        if k >= 2 {
            // one part constant (zero tangent, no gradient needed)
            let fixed = parts[0].clone();
            grads12("concat (first part constant)", |xs| {
                let mut all = vec![fixed.clone()];
                all.extend_from_slice(xs);
                Tensor::concat(&all, ax)
            }, &parts[1..])?;
        }
        // stack: k tensors of one shape along a new axis in 0..=rank
        let same: Vec<Tensor> = (0..k).map(|_| val(&mut r, &s)).collect();
        let at = r.random_range(0..=rank);
        let sax = if r.random_bool(0.5) { at as isize } else { at as isize - rank as isize - 1 };
        let mut ss = s.clone();
        ss.insert(at, k);
        let sdatas: Vec<Vec<f64>> = same.iter().map(|p| p.to_vec::<f64>()).collect();
        let want: Vec<f64> = (0..numel(&ss))
            .map(|i| {
                let mut idx = unravel(i, &ss);
                let j = idx.remove(at);
                sdatas[j][ravel(&idx, &s)]
            })
            .collect();
        check(&format!("stack along {sax} of {k} x {s:?}"), &same, &|xs| Tensor::stack(xs, sax), &ss, &want)?;
        if k >= 2 && s.len() >= 2 {
            // mismatched other dimensions panic
            let other = (axis + 1) % rank;
            let mut bs = parts[1].dims().to_vec();
            bs[other] += 1;
            let bad = vec![parts[0].clone(), val(&mut r, &bs)];
            let msg = panic_message(|| Tensor::concat(&bad, ax)).unwrap_or_default();
            prop_assert!(msg.starts_with("concat: shapes "), "{}", msg);
        }
    }

    /// `split` into random sizes and `chunk` into n pieces; the pieces are views that
    /// concatenate back to the input.
    #[test]
    fn split_chunk(s in shape(1..=4, 4), seed in any::<u64>(), n in 1usize..=5) {
        let mut r = rng(seed);
        let x = val(&mut r, &s);
        let data = x.to_vec::<f64>();
        let rank = s.len();
        let axis = r.random_range(0..rank);
        let ax = if r.random_bool(0.5) { axis as isize } else { axis as isize - rank as isize };
        let mut sizes = vec![];
        let mut left = s[axis];
        while left > 0 {
            let k = r.random_range(1..=left);
            sizes.push(k);
            left -= k;
        }
        let pieces = x.split(&sizes, ax);
        prop_assert_eq!(pieces.len(), sizes.len());
        let mut start = 0;
        for (p, &len) in pieces.iter().zip(&sizes) {
            let (os, want) = ref_narrow(&data, &s, axis, start, len);
            assert_values("split piece", p, &os, &want, 0.0)?;
            start += len;
        }
        // gradients: the pieces, scaled differently, concatenated in reverse order
        let sz = sizes.clone();
        grads12(&format!("split {sizes:?} along {ax}"), |xs| {
            let ps = xs[0].split(&sz, ax);
            let scaled: Vec<Tensor> = ps.iter().enumerate().rev().map(|(i, p)| p * (i as f64 + 1.0)).collect();
            Tensor::concat(&scaled, ax)
        }, std::slice::from_ref(&x))?;
        // chunk: pieces of ceil(d / n) with a smaller last one, like torch.chunk
        let d = s[axis];
        let step = d.div_ceil(n);
        let chunks = x.chunk(n, ax);
        prop_assert_eq!(chunks.len(), d.div_ceil(step));
        let mut start = 0;
        for c in &chunks {
            let len = step.min(d - start);
            let (os, want) = ref_narrow(&data, &s, axis, start, len);
            assert_values("chunk piece", c, &os, &want, 0.0)?;
            start += len;
        }
        assert_same("chunks concatenated", &Tensor::concat(&chunks, ax), &x, 0.0)?;
        grads12("chunk", |xs| {
            let cs = xs[0].chunk(n, ax);
            let scaled: Vec<Tensor> = cs.iter().enumerate().map(|(i, c)| c.square() * (i as f64 - 0.5)).collect();
            Tensor::concat(&scaled, ax)
        }, std::slice::from_ref(&x))?;
        let mut bad = sizes.clone();
        bad[0] += 1;
        let msg = panic_message(|| x.split(&bad, ax)).unwrap_or_default();
        prop_assert!(msg.starts_with("split: sizes "), "{}", msg);
    }

    /// 2-d matmul, plain and with transposed (strided) operands.
    #[test]
    fn matmul_2d(m in 1usize..=4, k in 1usize..=4, n in 1usize..=4, seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b) = (val(&mut r, &[m, k]), val(&mut r, &[k, n]));
        let (os, want) = ref_matmul(&a, &b);
        check(&format!("matmul [{m}, {k}] @ [{k}, {n}]"), &[a.clone(), b.clone()], &|xs| xs[0].matmul(&xs[1]), &os, &want)?;
        // operands stored transposed: a = at.t(), b = bt.t() are strided views
        let (at, bt) = (a.t().contiguous(), b.t().contiguous());
        check("matmul of transposed views", &[at, bt], &|xs| xs[0].t().matmul(&xs[1].t()), &os, &want)?;
        // one operand constant
        grads12("matmul (rhs constant)", |xs| xs[0].matmul(&b), std::slice::from_ref(&a))?;
        grads12("matmul (lhs constant)", |xs| a.matmul(&xs[0]), std::slice::from_ref(&b))?;
        let msg = panic_message(|| a.matmul(&val(&mut r, &[k + 1, n]))).unwrap_or_default();
        prop_assert_eq!(msg, format!("matmul: [{m}, {k}] @ [{}, {n}]: inner dimensions {k} and {} differ", k + 1, k + 1));
    }

    /// Batched matmul with broadcasting batch dimensions (size 1 and missing ones).
    #[test]
    fn matmul_batched((ba, bb) in broadcast_pair(), m in 1usize..=3, k in 1usize..=3, n in 1usize..=3, seed in any::<u64>()) {
        // batch ranks 0..=2 (trailing dimensions of broadcast-compatible shapes stay compatible)
        let (ba, bb) = (&ba[ba.len().saturating_sub(2)..], &bb[bb.len().saturating_sub(2)..]);
        let mut r = rng(seed);
        let sa: Vec<usize> = ba.iter().copied().chain([m, k]).collect();
        let sb: Vec<usize> = bb.iter().copied().chain([k, n]).collect();
        let (a, b) = (val(&mut r, &sa), val(&mut r, &sb));
        let (os, want) = ref_matmul(&a, &b);
        check(&format!("matmul {sa:?} @ {sb:?}"), &[a.clone(), b.clone()], &|xs| xs[0].matmul(&xs[1]), &os, &want)?;
        // the left operand stored transposed: a strided view in the batched product
        let at = a.transpose(-1, -2).contiguous();
        check("batched matmul of a transposed view", &[at, b], &|xs| xs[0].transpose(-1, -2).matmul(&xs[1]), &os, &want)?;
    }

    /// A 1-d operand on either side (or both) is a row / column vector whose dimension is dropped.
    #[test]
    fn matmul_vectors(batch in shape(0..=2, 3), m in 1usize..=4, k in 1usize..=4, seed in any::<u64>(), left in any::<bool>()) {
        let mut r = rng(seed);
        let mut sm: Vec<usize> = batch.clone();
        sm.extend(if left { [k, m] } else { [m, k] });
        let (v, mat) = (val(&mut r, &[k]), val(&mut r, &sm));
        let pair = if left { [v.clone(), mat.clone()] } else { [mat.clone(), v.clone()] };
        let (os, want) = ref_matmul(&pair[0], &pair[1]);
        check(&format!("matmul {:?} @ {:?}", pair[0].dims(), pair[1].dims()), &pair, &|xs| xs[0].matmul(&xs[1]), &os, &want)?;
        // vector @ vector: the inner product, 0-d; dot is the same
        let w = val(&mut r, &[k]);
        let (os, want) = ref_matmul(&v, &w);
        prop_assert!(os.is_empty());
        check("matmul [k] @ [k]", &[v.clone(), w.clone()], &|xs| xs[0].matmul(&xs[1]), &[], &want)?;
        check("dot", &[v.clone(), w.clone()], &|xs| xs[0].dot(&xs[1]), &[], &want)?;
        let msg = panic_message(|| v.dot(&val(&mut r, &[k + 1]))).unwrap_or_default();
        prop_assert!(msg.starts_with("dot: needs two vectors of one length"), "{}", msg);
    }

    #[test]
    fn outer(m in 1usize..=5, n in 1usize..=5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let (a, b) = (val(&mut r, &[m]), val(&mut r, &[n]));
        let (da, db) = (a.to_vec::<f64>(), b.to_vec::<f64>());
        let want: Vec<f64> = da.iter().flat_map(|x| db.iter().map(move |y| x * y)).collect();
        check("outer", &[a, b], &|xs| xs[0].outer(&xs[1]), &[m, n], &want)?;
    }

    /// Products big enough for the gemm kernel (and the batch-parallel path), with strided,
    /// transposed and broadcast (stride-0) operands, in f64 and f32.
    #[test]
    fn matmul_large_values(m in 8usize..=40, k in 8usize..=40, n in 8usize..=40, batch in 1usize..=3, seed in any::<u64>(), mode in 0usize..4) {
        let mut r = rng(seed);
        let b = val(&mut r, &[batch, k, n]);
        let a = match mode {
            0 => val(&mut r, &[batch, m, k]),
            1 => val(&mut r, &[batch, k, m]).transpose(-1, -2),
            2 => val(&mut r, &[k]).broadcast_to([batch, m, k]),
            _ => val(&mut r, &[m, 2 * k]).narrow(1, k, k),
        };
        let (os, want) = ref_matmul(&a, &b);
        assert_values(&format!("matmul {:?} @ {:?} (mode {mode})", a.dims(), b.dims()), &a.matmul(&b), &os, &want, 1e-12)?;
        assert_values("matmul with transposed rhs", &a.matmul(&b.t().contiguous().t()), &os, &want, 1e-12)?;
        let y32 = a.to_dtype(DType::F32).matmul(&b.to_dtype(DType::F32));
        assert_values("matmul (f32)", &y32, &os, &want, 1e-4)?;
        // a vector on either side of a matrix large enough for gemm
        let (kk, nn) = (r.random_range(65..=100), r.random_range(65..=100));
        let (v, mat) = (val(&mut r, &[kk]), val(&mut r, &[kk, nn]));
        let (os, want) = ref_matmul(&v, &mat);
        assert_values("vector @ large matrix", &v.matmul(&mat), &os, &want, 1e-12)?;
        let mt = mat.t();
        let (os, want) = ref_matmul(&mt, &v);
        assert_values("large transposed matrix @ vector", &mt.matmul(&v), &os, &want, 1e-12)?;
    }
}
