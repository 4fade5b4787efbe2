use nabla::ode::*;
use nabla::{Tensor, value_and_grad};
use std::time::Instant;
fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

#[test]
fn scratch_fall() {
    let (h, g) = (5.0f64, 9.81);
    for (name, opts) in [
        ("default", Options::default()),
        ("ckpt", Options::default().gradient(Gradient::checkpoint())),
        ("rk4", Options::default().method(Method::Rk4).dt(0.05)),
        (
            "dopri",
            Options::default()
                .method(Method::Dopri5)
                .save_at(vec![0.1, 0.2]),
        ),
    ] {
        let fall = |p: &[Tensor]| {
            let gc = p[1].clone();
            let f = move |_t: &Tensor, y: &Tensor| Tensor::stack(&[y.select(0, 1), gc.neg()], 0);
            let y0 = Tensor::stack(&[p[0].clone(), s(0.0)], 0);
            let ground =
                Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 0)).direction(Direction::Falling);
            let sol = solve_with_events(f, &s(0.0), 100.0, &y0, &[ground], &opts).unwrap();
            eprintln!("{name} stats {:?}", sol.stats);
            sol.t
        };
        let (t, gt) = value_and_grad(fall, &[s(h), s(g)]);
        eprintln!(
            "{name}: t {} dh {} dg {} want {} {} {}",
            t.item(),
            gt[0].item(),
            gt[1].item(),
            (2.0 * h / g).sqrt(),
            1.0 / (2.0 * g * h).sqrt(),
            -(2.0 * h / g).sqrt() / (2.0 * g)
        );
    }
}

#[test]
fn scratch_ckpt() {
    let run = |p: &[Tensor], gradient: Gradient, with_ev: bool| {
        let q = p[0].clone();
        let f = move |t: &Tensor, y: &Tensor| {
            let (th, om) = (y.select(0, 0), y.select(0, 1));
            let acc = -(th.sin() * &q.select(0, 0)) - &om * &q.select(0, 1) + (t * 0.7).sin() * 0.3;
            Tensor::stack(&[om, acc], 0)
        };
        let ev = Event::new(|t: &Tensor, y: &Tensor| y.select(0, 0) - (t * 0.01) + 0.2)
            .direction(Direction::Falling)
            .terminal(false);
        let opts = Options::default().rtol(1e-9).atol(1e-10).gradient(gradient);
        let evs = if with_ev { vec![ev] } else { vec![] };
        let t = Instant::now();
        let sol = solve_with_events(f, &p[2], 12.0, &p[1], &evs, &opts).unwrap();
        eprintln!(
            "{gradient:?} ev {with_ev}: stats {:?} events {} in {:?}",
            sol.stats,
            sol.events.len(),
            t.elapsed()
        );
        sol.y.sum()
    };
    let inputs = [
        Tensor::from_vec(vec![4.0, 0.15], [2]),
        Tensor::from_vec(vec![1.2, 0.0], [2]),
        s(0.3),
    ];
    for with_ev in [false, true] {
        for g in [Gradient::Record, Gradient::Checkpoint { segments: Some(3) }] {
            let t = Instant::now();
            let (v, gr) = value_and_grad(|p: &[Tensor]| run(p, g, with_ev), &inputs);
            eprintln!(
                "  value {} grads {:?} {:?} {:?} total {:?}",
                v.item(),
                gr[0].to_vec::<f64>(),
                gr[1].to_vec::<f64>(),
                gr[2].item(),
                t.elapsed()
            );
        }
    }
}
