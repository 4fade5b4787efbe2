//! Recurrent layers and cells: outputs, final states and gradients against PyTorch (fixture made by
//! `fixtures/rnn_torch.py` in float64), finite-difference checks of first and second derivatives in
//! both modes, and the module conventions (names, shapes, initialisation).

use nabla::nn::{
    Forward, Gru, GruCell, Lstm, LstmCell, Module, Rnn, RnnCell, RnnNonlinearity, RnnOptions,
};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::{check_grad, check_grad2};
use nabla::{DType, Tensor};

// ----- the PyTorch fixture ------------------------------------------------------------------------

struct Case {
    name: String,
    kind: String,
    layers: usize,
    batch_first: bool,
    bias: bool,
    input: usize,
    hidden: usize,
    /// Every tensor in file order (parameters first, in PyTorch's order).
    tensors: Vec<(String, Vec<usize>, Vec<f64>)>,
}

impl Case {
    fn has(&self, name: &str) -> bool {
        self.tensors.iter().any(|(n, _, _)| n == name)
    }
    fn get(&self, name: &str, dtype: DType) -> Tensor {
        let (_, shape, data) = self
            .tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{}: no tensor {name}", self.name));
        Tensor::from_vec(data.clone(), shape.clone()).to_dtype(dtype)
    }
    /// The parameter names, in file (= PyTorch) order.
    fn param_names(&self) -> Vec<String> {
        self.tensors
            .iter()
            .map(|(n, _, _)| n.clone())
            .take_while(|n| n.starts_with("weight") || n.starts_with("bias"))
            .collect()
    }
}

fn load_fixture() -> Vec<Case> {
    let text = include_str!("fixtures/rnn_torch.txt");
    let mut cases = Vec::new();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("case"), "fixture: expected a case line");
        let name = words.next().expect("case name").to_string();
        let mut field = std::collections::HashMap::new();
        for w in words {
            let (k, v) = w.split_once('=').expect("key=value");
            field.insert(k.to_string(), v.to_string());
        }
        let num = |k: &str| field[k].parse::<usize>().expect("number");
        let mut case = Case {
            name,
            kind: field["kind"].clone(),
            layers: num("layers"),
            batch_first: num("batch_first") == 1,
            bias: num("bias") == 1,
            input: num("input"),
            hidden: num("hidden"),
            tensors: Vec::new(),
        };
        loop {
            let l = lines.next().expect("fixture: unexpected end");
            if l == "end" {
                break;
            }
            let mut w = l.split_whitespace();
            assert_eq!(w.next(), Some("tensor"));
            let tname = w.next().expect("tensor name").to_string();
            let shape: Vec<usize> = w.map(|d| d.parse().expect("dim")).collect();
            let data: Vec<f64> = lines
                .next()
                .expect("values")
                .split_whitespace()
                .map(|v| v.parse().expect("value"))
                .collect();
            case.tensors.push((tname, shape, data));
        }
        cases.push(case);
    }
    cases
}

/// Loads the case's parameters into `m` (checking that the names and their order match PyTorch's).
fn load_params(m: &mut dyn Module, c: &Case, dtype: DType) {
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, c.param_names(), "{}: parameter names", c.name);
    m.visit_mut("", &mut |n, t, _| {
        let v = c.get(n, dtype);
        assert_eq!(v.shape(), t.shape(), "{}: {n}", c.name);
        *t = v.variable();
    });
}

/// Runs a fixture case in `dtype`: the outputs and gradients, named as in the fixture.
fn run_case(c: &Case, dtype: DType) -> Vec<(String, Tensor)> {
    let mut rng = StdRng::seed_from_u64(0);
    let opts = RnnOptions::default()
        .num_layers(c.layers)
        .bias(c.bias)
        .batch_first(c.batch_first)
        .dtype(dtype);
    let (i, h) = (c.input, c.hidden);
    let x = c.get("x", dtype).variable();
    let h0 = c.get("h0", dtype).variable();
    let c0 = c.has("c0").then(|| c.get("c0", dtype).variable());
    let (module, out, h_n, c_n): (Box<dyn Module>, Option<Tensor>, Tensor, Option<Tensor>) =
        match c.kind.as_str() {
            "lstm" => {
                let mut m = Lstm::with_options(i, h, opts, &mut rng);
                load_params(&mut m, c, dtype);
                let (o, (hn, cn)) = m.forward_with_state(&x, Some((&h0, c0.as_ref().unwrap())));
                (Box::new(m), Some(o), hn, Some(cn))
            }
            "gru" => {
                let mut m = Gru::with_options(i, h, opts, &mut rng);
                load_params(&mut m, c, dtype);
                let (o, hn) = m.forward_with_state(&x, Some(&h0));
                (Box::new(m), Some(o), hn, None)
            }
            "rnn_tanh" | "rnn_relu" => {
                let nl = if c.kind == "rnn_relu" {
                    RnnNonlinearity::Relu
                } else {
                    RnnNonlinearity::Tanh
                };
                let mut m = Rnn::with_options(i, h, nl, opts, &mut rng);
                load_params(&mut m, c, dtype);
                let (o, hn) = m.forward_with_state(&x, Some(&h0));
                (Box::new(m), Some(o), hn, None)
            }
            "lstm_cell" => {
                let mut m = LstmCell::with_options(i, h, c.bias, dtype, &mut rng);
                load_params(&mut m, c, dtype);
                let (hn, cn) = m.forward_with_state(&x, Some((&h0, c0.as_ref().unwrap())));
                (Box::new(m), None, hn, Some(cn))
            }
            "gru_cell" => {
                let mut m = GruCell::with_options(i, h, c.bias, dtype, &mut rng);
                load_params(&mut m, c, dtype);
                let hn = m.forward_with_state(&x, Some(&h0));
                (Box::new(m), None, hn, None)
            }
            "rnn_cell" => {
                let mut m =
                    RnnCell::with_options(i, h, RnnNonlinearity::Tanh, c.bias, dtype, &mut rng);
                load_params(&mut m, c, dtype);
                let hn = m.forward_with_state(&x, Some(&h0));
                (Box::new(m), None, hn, None)
            }
            k => panic!("unknown kind {k}"),
        };
    let mut loss = (&h_n * &c.get("cot_h", dtype)).sum();
    if let Some(o) = &out {
        loss = loss + (o * &c.get("cot_out", dtype)).sum();
    }
    if let Some(cn) = &c_n {
        loss = loss + (cn * &c.get("cot_c", dtype)).sum();
    }
    let grads = loss.backward();
    let mut res = vec![("h_n".to_string(), h_n)];
    res.extend(out.map(|o| ("out".to_string(), o)));
    res.extend(c_n.map(|t| ("c_n".to_string(), t)));
    for (n, p) in module.named_parameters() {
        res.push((
            format!("grad_{n}"),
            grads.get(&p).expect("param grad").clone(),
        ));
    }
    res.push(("grad_x".into(), grads.get(&x).expect("grad x").clone()));
    res.push(("grad_h0".into(), grads.get(&h0).expect("grad h0").clone()));
    if let Some(c0) = &c0 {
        res.push(("grad_c0".into(), grads.get(c0).expect("grad c0").clone()));
    }
    res
}

fn assert_close(case: &str, what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{case}: {what}: shape");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{case}: {what}[{k}]: nabla {a}, PyTorch {b} (tolerance {tol} x {scale})"
        );
    }
}

fn compare_with_torch(dtype: DType, tol: f64) {
    let cases = load_fixture();
    assert_eq!(cases.len(), 11);
    for c in &cases {
        let res = run_case(c, dtype);
        let expected = ["out", "h_n", "c_n"].iter().filter(|n| c.has(n)).count()
            + c.tensors
                .iter()
                .filter(|(n, _, _)| n.starts_with("grad_"))
                .count();
        assert_eq!(res.len(), expected, "{}: compared quantities", c.name);
        for (name, t) in &res {
            assert_close(&c.name, name, t, &c.get(name, DType::F64), tol);
        }
    }
}

#[test]
fn matches_pytorch_in_f64() {
    compare_with_torch(DType::F64, 1e-10);
}

#[test]
fn matches_pytorch_in_f32() {
    compare_with_torch(DType::F32, 2e-5);
}

// ----- finite differences, first and second order, reverse and forward mode ------------------------

const I: usize = 2;
const H: usize = 3;
const B: usize = 2;
const T: usize = 3;

fn randn(shape: &[usize], rng: &mut StdRng) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, rng)
}

/// Checks first and second derivatives of `run(module, x, states)` with respect to the input, the
/// states and every parameter of `module`.
fn check_module<M: Module>(
    make: impl Fn() -> M,
    x: Tensor,
    states: Vec<Tensor>,
    run: impl Fn(&M, &Tensor, &[Tensor]) -> Tensor,
) {
    let m = make();
    let mut inputs = vec![x];
    inputs.extend(states);
    let ns = inputs.len();
    inputs.extend(m.parameters().iter().map(|p| p.detach()));
    let f = |xs: &[Tensor]| {
        let mut m = make();
        m.set_parameters(&xs[ns..]);
        run(&m, &xs[0], &xs[1..ns])
    };
    check_grad(f, &inputs).unwrap();
    check_grad2(f, &inputs).unwrap();
}

fn opts() -> RnnOptions {
    RnnOptions::default().num_layers(2).dtype(DType::F64)
}

#[test]
fn lstm_gradients() {
    let mut rng = StdRng::seed_from_u64(1);
    let x = randn(&[B, T, I], &mut rng);
    let states = vec![randn(&[2, B, H], &mut rng), randn(&[2, B, H], &mut rng)];
    check_module(
        || Lstm::with_options(I, H, opts(), &mut StdRng::seed_from_u64(2)),
        x,
        states,
        |m, x, s| {
            let (o, (h, c)) = m.forward_with_state(x, Some((&s[0], &s[1])));
            Tensor::concat(&[o.flatten(0, -1), h.flatten(0, -1), c.flatten(0, -1)], 0)
        },
    );
}

#[test]
fn gru_gradients() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = randn(&[T, B, I], &mut rng);
    let states = vec![randn(&[2, B, H], &mut rng)];
    check_module(
        || {
            Gru::with_options(
                I,
                H,
                opts().batch_first(false),
                &mut StdRng::seed_from_u64(4),
            )
        },
        x,
        states,
        |m, x, s| {
            let (o, h) = m.forward_with_state(x, Some(&s[0]));
            Tensor::concat(&[o.flatten(0, -1), h.flatten(0, -1)], 0)
        },
    );
}

#[test]
fn rnn_gradients() {
    for (seed, nl) in [(5, RnnNonlinearity::Tanh), (6, RnnNonlinearity::Relu)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = randn(&[B, T, I], &mut rng);
        let states = vec![randn(&[2, B, H], &mut rng)];
        check_module(
            || Rnn::with_options(I, H, nl, opts(), &mut StdRng::seed_from_u64(seed + 10)),
            x,
            states,
            |m, x, s| {
                let (o, h) = m.forward_with_state(x, Some(&s[0]));
                Tensor::concat(&[o.flatten(0, -1), h.flatten(0, -1)], 0)
            },
        );
    }
}

#[test]
fn cell_gradients() {
    let mut rng = StdRng::seed_from_u64(7);
    let x = randn(&[B, I], &mut rng);
    let (h, c) = (randn(&[B, H], &mut rng), randn(&[B, H], &mut rng));
    let seeded = || StdRng::seed_from_u64(8);
    check_module(
        || LstmCell::with_options(I, H, true, DType::F64, &mut seeded()),
        x.clone(),
        vec![h.clone(), c],
        |m, x, s| {
            let (h, c) = m.forward_with_state(x, Some((&s[0], &s[1])));
            Tensor::concat(&[h, c], 1)
        },
    );
    check_module(
        || GruCell::with_options(I, H, true, DType::F64, &mut seeded()),
        x.clone(),
        vec![h.clone()],
        |m, x, s| m.forward_with_state(x, Some(&s[0])),
    );
    check_module(
        || {
            RnnCell::with_options(
                I,
                H,
                RnnNonlinearity::Tanh,
                false,
                DType::F64,
                &mut seeded(),
            )
        },
        x,
        vec![h],
        |m, x, s| m.forward_with_state(x, Some(&s[0])),
    );
}

// ----- conventions -------------------------------------------------------------------------------

#[test]
fn names_shapes_and_init_follow_pytorch() {
    let mut rng = StdRng::seed_from_u64(9);
    let lstm = Lstm::with_options(5, 7, RnnOptions::default().num_layers(2), &mut rng);
    let named: Vec<(String, Vec<usize>)> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    let want = [
        ("weight_ih_l0", vec![28, 5]),
        ("weight_hh_l0", vec![28, 7]),
        ("bias_ih_l0", vec![28]),
        ("bias_hh_l0", vec![28]),
        ("weight_ih_l1", vec![28, 7]),
        ("weight_hh_l1", vec![28, 7]),
        ("bias_ih_l1", vec![28]),
        ("bias_hh_l1", vec![28]),
    ];
    assert_eq!(
        named,
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect::<Vec<_>>()
    );
    let bound = 1.0 / 7f64.sqrt();
    for p in lstm.parameters() {
        assert!(p.is_leaf());
        let v = p.to_vec::<f64>();
        assert!(v.iter().all(|x| x.abs() <= bound));
        assert!(
            v.iter().any(|x| x.abs() > bound / 2.0),
            "spread over the range"
        );
    }
    let gru = Gru::with_options(4, 6, RnnOptions::default().bias(false), &mut rng);
    let names: Vec<String> = gru.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih_l0", "weight_hh_l0"]);
    assert_eq!(gru.num_parameters(), 18 * 4 + 18 * 6);
    let rnn = Rnn::new(4, 6, &mut rng);
    assert_eq!(rnn.num_parameters(), 6 * 4 + 6 * 6 + 12);
    assert_eq!(GruCell::new(4, 6, &mut rng).num_parameters(), 18 * 10 + 36);
    // nested inside a derived module
    #[derive(Module)]
    struct Seq2Seq {
        encoder: Lstm,
        decoder: LstmCell,
    }
    let s = Seq2Seq {
        encoder: Lstm::new(2, 3, &mut rng),
        decoder: LstmCell::new(2, 3, &mut rng),
    };
    let names: Vec<String> = s.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "encoder.weight_ih_l0");
    assert_eq!(names[4], "decoder.weight_ih");
}

#[test]
fn layouts_agree() {
    // batch-first, time-first and unbatched runs of one network give the same numbers, and a layer
    // equals its cell stepped in a loop.
    let mut rng = StdRng::seed_from_u64(10);
    let bf = Lstm::with_options(3, 4, opts(), &mut StdRng::seed_from_u64(11));
    let tf = Lstm::with_options(
        3,
        4,
        opts().batch_first(false),
        &mut StdRng::seed_from_u64(11),
    );
    let x = Tensor::randn([2, 6, 3], DType::F64, &mut rng);
    let (o1, (h1, c1)) = bf.forward_with_state(&x, None);
    let (o2, (h2, c2)) = tf.forward_with_state(&x.transpose(0, 1), None);
    assert_close("layouts", "out", &o2.transpose(0, 1), &o1, 1e-14);
    assert_close("layouts", "h", &h2, &h1, 1e-14);
    assert_close("layouts", "c", &c2, &c1, 1e-14);
    let (o3, (h3, _)) = bf.forward_with_state(&x.select(0, 1), None);
    assert_close("layouts", "unbatched", &o3, &o1.select(0, 1), 1e-14);
    assert_close("layouts", "unbatched h", &h3, &h1.select(1, 1), 1e-14);

    let gru = Gru::with_options(3, 4, RnnOptions::default().dtype(DType::F64), &mut rng);
    let mut cell = GruCell::with_options(3, 4, true, DType::F64, &mut rng);
    cell.set_parameters(&gru.parameters());
    let mut h = Tensor::zeros([2, 4], DType::F64);
    for t in 0..6 {
        h = cell.forward_with_state(&x.select(1, t), Some(&h));
        assert_close("cell loop", "h", &h, &gru.forward(&x).select(1, t), 1e-14);
    }
}

#[test]
fn truncated_bptt_continues_from_the_state() {
    // Running 6 steps at once equals 4 steps then 2 from the final state, and gradients flow back
    // through the carried state.
    let mut rng = StdRng::seed_from_u64(12);
    let lstm = Lstm::with_options(3, 4, opts(), &mut rng);
    let x = Tensor::randn([2, 6, 3], DType::F64, &mut rng);
    let (full, _) = lstm.forward_with_state(&x, None);
    let (a, (h, c)) = lstm.forward_with_state(&x.narrow(1, 0, 4), None);
    let (b, _) = lstm.forward_with_state(&x.narrow(1, 4, 2), Some((&h, &c)));
    assert_close(
        "tbptt",
        "out",
        &Tensor::concat(&[a, b.clone()], 1),
        &full,
        1e-14,
    );
    let g1 = full.narrow(1, 4, 2).sum().backward();
    let g2 = b.sum().backward();
    for p in lstm.parameters() {
        assert_close(
            "tbptt",
            "grad",
            g2.get(&p).unwrap(),
            g1.get(&p).unwrap(),
            1e-12,
        );
    }
}

#[test]
#[should_panic(
    expected = "Lstm: input must be [B, T, I] or unbatched [T, I] with I = 3, got [2, 5, 4]"
)]
fn wrong_input_size_panics_with_shapes() {
    let lstm = Lstm::new(3, 4, &mut StdRng::seed_from_u64(0));
    lstm.forward(&Tensor::zeros([2, 5, 4], DType::F32));
}

#[test]
#[should_panic(expected = "Gru: h0 must be [1, 2, 4] for input [2, 5, 3], got [2, 4]")]
fn wrong_state_shape_panics_with_shapes() {
    let gru = Gru::new(3, 4, &mut StdRng::seed_from_u64(0));
    let h0 = Tensor::zeros([2, 4], DType::F32);
    gru.forward_with_state(&Tensor::zeros([2, 5, 3], DType::F32), Some(&h0));
}
