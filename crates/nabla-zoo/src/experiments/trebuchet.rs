//! `trebuchet`: aiming a counterweight trebuchet through its simulator (the simulator is
//! [`crate::sim::trebuchet`]: three phases separated by differentiable events, solved by
//! `nabla::ode`). Two ways to aim at a target distance under a horizontal wind:
//! (a) *direct aiming*: Newton's method on the one-dimensional residual `distance - target` in the
//! two controls (the minimum-norm step `-r g / |g|^2`, `g` the gradient of the distance from
//! autodiff through the whole shot), and (b) an *aiming network* (target and wind in, counterweight
//! mass and release angle out) trained through the simulator on random targets and winds with the
//! squared relative miss as its loss, then evaluated on held-out (target, wind) pairs. Both are
//! timed: one network inference replaces a whole direct aim. The inference is timed on the trained
//! network frozen into plain `f64` buffers ([`AimInference`]: the same weights and arithmetic,
//! checked against the tensor forward, without graph or allocation): each call on its own, over
//! the held-out pairs in turn, the clock's cost included; `nn_inference_us` is the median call.
//!
//! Training, per step: a batch of random reachable pairs is shot at the network's controls, and
//! one backward pass through all the shots gives each shot's distance and its gradient with respect
//! to the network's two raw outputs. Then `--inner-steps` Adam steps are taken on the squared
//! relative miss with each distance taken to first order in the outputs around its shot (a
//! Gauss–Newton-like reuse of the simulator's gradient): the first of them is exactly the gradient
//! of the true loss through the simulator, and `--inner-steps 1` is plain gradient descent through
//! it. The reuse matters because a shot with its gradient costs milliseconds while a network step
//! costs microseconds: in `--quick` (25 steps of 8 shots, seed 0) the held-out median miss was
//! 18.2% with one inner step and 2.5% with eight (78% untrained).
//!
//! Not every (target, wind) can be hit with a bounded counterweight: drag on this light projectile
//! caps the range, much lower into a headwind. The run first maps the reachable band per wind
//! (farthest shot at the heaviest mass over all release angles, nearest shot at the lightest mass
//! released at 85 degrees) and draws pairs (target uniform, wind Gaussian) until one lies inside it
//! with a 5% margin; it reports the fraction of draws it rejected.

use super::aim_net::{AimInference, AimNet};
use crate::experiment::{
    Config, Context, Curve, Experiment, OptSpec, Report, Series, Spec, ZooError,
};
use crate::sim::trebuchet::{Design, ShotError, shoot, shot_options};
use crate::train::{Trainer, ema, step_seed};
use nabla::nn::{Forward, Module};
use nabla::ode::Options;
use nabla::optim::{Adam, Optimizer};
use nabla::rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use nabla::{Tensor, no_grad};
use serde_json::json;
use std::f64::consts::FRAC_PI_2;
use std::time::Instant;

/// See the module docs.
pub struct Trebuchet;

/// The controls' ranges: counterweight mass `lo..hi` (kg); the release angle is `0..90` degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MassRange {
    /// Lightest counterweight (kg).
    pub lo: f64,
    /// Heaviest counterweight (kg).
    pub hi: f64,
}

impl MassRange {
    /// The controls `(mass kg, angle rad)` for unconstrained values `(u, v)`: a scaled sigmoid
    /// each, so every output is a buildable trebuchet.
    pub fn controls(&self, u: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        (
            u.sigmoid() * (self.hi - self.lo) + self.lo,
            v.sigmoid() * FRAC_PI_2,
        )
    }
    /// The unconstrained `(u, v)` of a mass (kg) and an angle (degrees).
    pub fn raw(&self, mass: f64, angle_deg: f64) -> (f64, f64) {
        let logit = |p: f64| (p / (1.0 - p)).ln();
        (
            logit((mass - self.lo) / (self.hi - self.lo)),
            logit(angle_deg / 90.0),
        )
    }
}

/// A target distance (m) and a wind (m/s, positive towards the target).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    /// Target distance (m).
    pub target: f64,
    /// Horizontal wind (m/s).
    pub wind: f64,
}

/// Which (target, wind) pairs can be hit: the band `[near(w), far(w)]` tabulated on a wind grid.
pub struct Reach {
    winds: Vec<f64>,
    near: Vec<f64>,
    far: Vec<f64>,
    margin: f64,
}

fn distance_nograd(d: &Design, mass: f64, angle: f64, wind: f64, opts: &Options) -> Option<f64> {
    no_grad(|| {
        let s = shoot(
            d,
            &Tensor::scalar(mass),
            &Tensor::scalar(angle),
            &Tensor::scalar(wind),
            opts,
            0.0,
        );
        s.ok().map(|s| s.distance.item())
    })
}

impl Reach {
    /// Tabulates the band on `n` winds evenly spaced in `[-wmax, wmax]`; a pair is reachable when
    /// its target lies inside the band shrunk by `margin` (relative) at each end.
    pub fn map(
        d: &Design,
        range: MassRange,
        wmax: f64,
        n: usize,
        margin: f64,
        opts: &Options,
    ) -> Reach {
        let winds: Vec<f64> = (0..n)
            .map(|i| -wmax + 2.0 * wmax * i as f64 / (n - 1) as f64)
            .collect();
        let mut near = Vec::new();
        let mut far = Vec::new();
        for &w in &winds {
            // nearest: lightest counterweight, steep release
            near.push(
                distance_nograd(d, range.lo, 85f64.to_radians(), w, opts).unwrap_or(f64::INFINITY),
            );
            // farthest: heaviest counterweight, best angle by golden-section search
            let f = |a: f64| distance_nograd(d, range.hi, a.to_radians(), w, opts).unwrap_or(0.0);
            let (mut a, mut b) = (2.0f64, 70.0f64);
            let r = (5f64.sqrt() - 1.0) / 2.0;
            let (mut x1, mut x2) = (b - r * (b - a), a + r * (b - a));
            let (mut f1, mut f2) = (f(x1), f(x2));
            while b - a > 0.2 {
                if f1 > f2 {
                    b = x2;
                    (x2, f2) = (x1, f1);
                    x1 = b - r * (b - a);
                    f1 = f(x1);
                } else {
                    a = x1;
                    (x1, f1) = (x2, f2);
                    x2 = a + r * (b - a);
                    f2 = f(x2);
                }
            }
            far.push(f1.max(f2));
        }
        Reach {
            winds,
            near,
            far,
            margin,
        }
    }

    fn interp(&self, v: &[f64], w: f64) -> Option<f64> {
        let (w0, w1) = (self.winds[0], *self.winds.last()?);
        if !(w0..=w1).contains(&w) {
            return None;
        }
        let x = (w - w0) / (w1 - w0) * (self.winds.len() - 1) as f64;
        let i = (x.floor() as usize).min(self.winds.len() - 2);
        let t = x - i as f64;
        Some(v[i] * (1.0 - t) + v[i + 1] * t)
    }

    /// The band `(near, far)` at wind `w` (`None` outside the tabulated winds).
    pub fn band(&self, w: f64) -> Option<(f64, f64)> {
        Some((self.interp(&self.near, w)?, self.interp(&self.far, w)?))
    }

    /// Whether `p` lies inside the band with the margin.
    pub fn reachable(&self, p: Pair) -> bool {
        self.band(p.wind).is_some_and(|(near, far)| {
            p.target >= near * (1.0 + self.margin) && p.target <= far * (1.0 - self.margin)
        })
    }

    /// Draws `n` reachable pairs (target uniform in `targets`, wind normal with `wind_std`);
    /// returns them and the number of rejected draws.
    pub fn draw<R: Rng + ?Sized>(
        &self,
        n: usize,
        targets: (f64, f64),
        wind_std: f64,
        rng: &mut R,
    ) -> (Vec<Pair>, usize) {
        let mut out = Vec::with_capacity(n);
        let mut rejected = 0;
        while out.len() < n {
            let target = rng.random_range(targets.0..targets.1);
            let wind = wind_std * normal(rng);
            let p = Pair { target, wind };
            if self.reachable(p) {
                out.push(p);
            } else {
                rejected += 1;
            }
        }
        (out, rejected)
    }
}

fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // Box–Muller
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The result of a direct aim.
#[derive(Clone, Copy, Debug)]
pub struct Aim {
    /// Counterweight mass (kg).
    pub mass: f64,
    /// Release angle (degrees).
    pub angle_deg: f64,
    /// The distance reached (m).
    pub distance: f64,
    /// Gradient evaluations (simulated shots with their gradient).
    pub evals: usize,
}

/// Aims directly: Newton's method on the residual `distance(u, v) - target` in the unconstrained
/// controls, minimum-norm step `-r g/|g|^2` (the gradient from autodiff through the shot), with
/// step halving when a step does not reduce the miss. Starts from 90 kg and 45 degrees; stops when
/// the relative miss is below `tol` or after `max_evals` shots.
pub fn direct_aim(
    d: &Design,
    range: MassRange,
    p: Pair,
    tol: f64,
    max_evals: usize,
    opts: &Options,
) -> Result<Aim, ShotError> {
    let (mut u, mut v) = range.raw(90.0, 45.0);
    let wind = Tensor::scalar(p.wind);
    let (mut best, mut best_uv, mut step) = (f64::INFINITY, (u, v), (0.0, 0.0));
    let mut last = None;
    for evals in 1..=max_evals {
        let (tu, tv) = (Tensor::scalar(u).variable(), Tensor::scalar(v).variable());
        let (mass, angle) = range.controls(&tu, &tv);
        let shot = shoot(d, &mass, &angle, &wind, opts, 0.0);
        let Ok(shot) = shot else {
            // a failed shot: go back halfway
            step = (step.0 / 2.0, step.1 / 2.0);
            (u, v) = (best_uv.0 + step.0, best_uv.1 + step.1);
            last = shot.err();
            continue;
        };
        let r = shot.distance.item() - p.target;
        let aim = Aim {
            mass: mass.item(),
            angle_deg: angle.item().to_degrees(),
            distance: shot.distance.item(),
            evals,
        };
        if r.abs() / p.target < tol {
            return Ok(aim);
        }
        if r.abs() >= best {
            // no progress: halve the last step from the best point
            step = (step.0 / 2.0, step.1 / 2.0);
            (u, v) = (best_uv.0 + step.0, best_uv.1 + step.1);
            continue;
        }
        best = r.abs();
        best_uv = (u, v);
        let g = shot.distance.backward();
        let (gu, gv) = (g.get_or_zeros(&tu).item(), g.get_or_zeros(&tv).item());
        let n2 = gu * gu + gv * gv;
        let (mut su, mut sv) = (-r * gu / n2, -r * gv / n2);
        let norm = (su * su + sv * sv).sqrt();
        if norm > 2.0 {
            (su, sv) = (su * 2.0 / norm, sv * 2.0 / norm);
        }
        step = (su, sv);
        (u, v) = (u + su, v + sv);
        last = None;
    }
    match last {
        Some(e) => Err(e),
        None => Err(ShotError::NoEvent("the direct aim's convergence")),
    }
}

/// Relative misses (%) of the network's aims at `pairs` (a failed shot counts as 100%).
fn network_misses(
    net: &AimNet,
    range: MassRange,
    d: &Design,
    pairs: &[Pair],
    opts: &Options,
) -> Vec<f64> {
    no_grad(|| {
        let out = net.forward(&AimNet::inputs(pairs));
        let (mass, angle) = range.controls(&out.select(1, 0), &out.select(1, 1));
        let (mass, angle) = (mass.to_vec::<f64>(), angle.to_vec::<f64>());
        pairs
            .iter()
            .enumerate()
            .map(
                |(i, p)| match distance_nograd(d, mass[i], angle[i], p.wind, opts) {
                    Some(x) => 100.0 * (x - p.target).abs() / p.target,
                    None => 100.0,
                },
            )
            .collect()
    })
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let x = q * (s.len() - 1) as f64;
    let (i, t) = (x.floor() as usize, x - x.floor());
    if i + 1 < s.len() {
        s[i] * (1.0 - t) + s[i + 1] * t
    } else {
        s[i]
    }
}

impl Experiment for Trebuchet {
    fn spec(&self) -> Spec {
        Spec {
            name: "trebuchet",
            summary: "aim a simulated counterweight trebuchet (3 event-separated ODE phases, drag, wind): direct aiming by Newton through the simulator, and an aiming network trained through it",
            runtime: "~5 min (800 steps of 16 shots); --quick ~6 s",
            options: vec![
                OptSpec::int(
                    "hidden",
                    "hidden units of the aiming network (two tanh layers)",
                    32,
                ).min(1)
                .quick(16),
                OptSpec::int("batch-size", "shots per training step", 16).min(1).quick(8),
                OptSpec::float(
                    "lr",
                    "Adam learning rate (cosine decay to 1/30 of it)",
                    1e-2,
                ).greater_than(0.0)
                .quick(3e-2),
                OptSpec::int(
                    "inner-steps",
                    "Adam steps per batch of shots, on the distance linearised around them (1: plain)",
                    8,
                ).min(1),
                OptSpec::float("mass-min", "lightest counterweight (kg)", 20.0).greater_than(0.0),
                OptSpec::float("mass-max", "heaviest counterweight (kg)", 400.0).greater_than(0.0),
                OptSpec::float("target-min", "nearest target (m)", 20.0).greater_than(0.0),
                OptSpec::float("target-max", "farthest target (m)", 100.0).greater_than(0.0),
                OptSpec::float("wind-std", "standard deviation of the wind (m/s)", 5.0).min(0.0),
                OptSpec::int("held-out", "held-out (target, wind) pairs", 1000).min(1).quick(60),
                OptSpec::int(
                    "direct-aims",
                    "pairs aimed directly (timed; checks reachability)",
                    20,
                ).min(1)
                .quick(2),
                OptSpec::float("aim-tol", "direct aim stops below this relative miss", 1e-3).greater_than(0.0),
                OptSpec::float(
                    "rtol",
                    "relative tolerance of the ODE solver while training and aiming",
                    1e-4,
                ).greater_than(0.0).less_than(1.0),
                OptSpec::float(
                    "eval-rtol",
                    "relative tolerance of the shots that measure the misses",
                    1e-6,
                ).greater_than(0.0).less_than(1.0),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let bad = |m: String| {
            Err(ZooError::Config(crate::experiment::ConfigError::Malformed(
                m,
            )))
        };
        let range = MassRange {
            lo: cfg.f64("mass-min"),
            hi: cfg.f64("mass-max"),
        };
        if !(range.lo > 0.0 && range.hi > range.lo) {
            return bad(format!(
                "need 0 < --mass-min < --mass-max, got {} and {}",
                range.lo, range.hi
            ));
        }
        let targets = (cfg.f64("target-min"), cfg.f64("target-max"));
        if !(targets.0 > 0.0 && targets.1 > targets.0) {
            return bad(format!(
                "need 0 < --target-min < --target-max, got {} and {}",
                targets.0, targets.1
            ));
        }
        let wind_std = cfg.f64("wind-std");
        let (rtol, eval_rtol, aim_tol) =
            (cfg.f64("rtol"), cfg.f64("eval-rtol"), cfg.f64("aim-tol"));
        let tol_ok = |r: f64| r > 0.0 && r < 1e-2;
        if !(wind_std >= 0.0 && tol_ok(rtol) && tol_ok(eval_rtol) && aim_tol > 0.0) {
            return bad(
                "need --wind-std >= 0, 0 < --rtol, --eval-rtol < 0.01, --aim-tol > 0".into(),
            );
        }
        let (hidden, batch) = (cfg.usize("hidden").max(1), cfg.usize("batch-size").max(1));
        let (n_held, n_direct) = (cfg.usize("held-out").max(1), cfg.usize("direct-aims"));
        let inner = cfg.usize("inner-steps").max(1);
        let steps = cfg.steps_or(if cfg.quick { 25 } else { 800 });
        let d = Design::reference();
        let opts = shot_options(rtol, rtol * 1e-3);
        let eval_opts = shot_options(eval_rtol, eval_rtol * 1e-3);

        // Which pairs can be hit (the band per wind), then fixed held-out and validation pairs.
        let t_reach = Instant::now();
        let reach = Reach::map(
            &d,
            range,
            4.0 * wind_std.max(0.25),
            if cfg.quick { 7 } else { 17 },
            0.05,
            &opts,
        );
        let reach_s = t_reach.elapsed().as_secs_f64();
        let mut fixed = StdRng::seed_from_u64(0x7EB_0C4E7);
        let (held, rej_held) = reach.draw(n_held, targets, wind_std, &mut fixed);
        let (val, _) = reach.draw(
            if cfg.quick { 20 } else { 100 },
            targets,
            wind_std,
            &mut fixed,
        );
        let reach_rejected = rej_held as f64 / (rej_held + n_held) as f64;

        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut net = AimNet::new(hidden, &mut rng);
        let untrained = network_misses(&net, range, &d, &held, &eval_opts);
        let lr0 = cfg.f64("lr");
        let mut opt = Adam::new(lr0);
        let mut trainer = Trainer::new(ctx, steps, &mut net, &mut opt)?;
        let eval_every = (steps / 10).max(1);
        let t_train = Instant::now();
        let mut failed_shots = 0usize;
        while !trainer.done() {
            let step = trainer.step();
            let mut srng = StdRng::seed_from_u64(step_seed(cfg.seed, step));
            let (pairs, _) = reach.draw(batch, targets, wind_std, &mut srng);
            let progress = step as f64 / steps as f64;
            opt.set_learning_rate(
                lr0 * (1.0 / 30.0
                    + (29.0 / 30.0) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())),
            );
            // The simulator's distances and their gradients with respect to the network's raw
            // outputs (one backward pass through all the shots)...
            let x = AimNet::inputs(&pairs);
            let out0 = no_grad(|| net.forward(&x)).variable();
            let (mass, angle) = range.controls(&out0.select(1, 0), &out0.select(1, 1));
            let (mut dist, mut keep, mut shots) = (vec![0.0; batch], vec![0.0; batch], Vec::new());
            for (i, p) in pairs.iter().enumerate() {
                let (m, a) = (mass.select(0, i), angle.select(0, i));
                match shoot(&d, &m, &a, &Tensor::scalar(p.wind), &opts, 0.0) {
                    Ok(s) => {
                        (dist[i], keep[i]) = (s.distance.item(), 1.0);
                        shots.push(s.distance);
                    }
                    Err(_) => failed_shots += 1,
                }
            }
            let mut status = String::from("no shot landed");
            if !shots.is_empty() {
                let sens = Tensor::stack(&shots, 0)
                    .sum()
                    .backward()
                    .get_or_zeros(&out0);
                let out0 = out0.detach();
                let n_ok = keep.iter().sum::<f64>();
                let inv_t: Vec<f64> = pairs.iter().zip(&keep).map(|(p, k)| k / p.target).collect();
                let tgt: Vec<f64> = pairs.iter().map(|p| p.target).collect();
                let (dist, inv_t, tgt) = (
                    Tensor::from_vec(dist, [batch]),
                    Tensor::from_vec(inv_t, [batch]),
                    Tensor::from_vec(tgt, [batch]),
                );
                // ...then `inner` Adam steps on the squared relative miss, the distance taken to
                // first order in the outputs around those shots. The first step's gradient is the
                // exact gradient through the simulator; `--inner-steps 1` is plain training.
                let mut first = f64::NAN;
                for k in 0..inner {
                    let out = net.forward(&x);
                    let d_lin = &dist + ((&out - &out0) * &sens).sum_axis(1, false);
                    let loss = ((d_lin - &tgt) * &inv_t).square().sum() * (1.0 / n_ok);
                    if k == 0 {
                        first = loss.item();
                        trainer.check_loss(first)?;
                    }
                    let grads = loss.backward();
                    opt.step(&mut net, &grads);
                }
                let rms = 100.0 * ema(&mut trainer.scalars, "loss", first, 0.9).sqrt();
                if (step + 1) % 5 == 0 {
                    trainer.curves.push("train", (step + 1) as f64, rms);
                }
                status = format!("rms miss {rms:.2}%");
            }
            if (step + 1) % eval_every == 0 || step + 1 == steps {
                let med = quantile(&network_misses(&net, range, &d, &val, &opts), 0.5);
                trainer.curves.push("val", (step + 1) as f64, med);
            }
            trainer.end_step(&mut net, &mut opt, &status)?;
        }
        let train_s = t_train.elapsed().as_secs_f64();
        trainer.finish(&mut net, &mut opt)?;
        let curves = trainer.curves.clone();
        drop(trainer);

        // Held-out evaluation and the cost of one inference.
        let misses = network_misses(&net, range, &d, &held, &eval_opts);
        let (nn_median, nn_p90) = (quantile(&misses, 0.5), quantile(&misses, 0.9));
        let within = misses.iter().filter(|&&m| m <= 0.5).count() as f64 / misses.len() as f64;
        // One inference: the network frozen into plain buffers, then (target, wind) in, controls
        // out. Each call is timed on its own (the clock's own cost included) over the held-out
        // pairs in turn; the figure is the median call.
        let frozen = AimInference::new(&net, range);
        let reps = if cfg.quick { 2000 } else { 20000 };
        let mut calls = Vec::with_capacity(reps);
        for i in 0..reps {
            let p = std::hint::black_box(held[i % held.len()]);
            let t = Instant::now();
            std::hint::black_box(frozen.aim(p));
            calls.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let inference_us = quantile(&calls, 0.5);

        // Direct aims at the first held-out pairs: timed, and a check that they are reachable.
        let mut direct = Vec::new();
        let mut direct_failed = 0usize;
        let mut direct_s = 0.0;
        for p in held.iter().take(n_direct) {
            let t = Instant::now();
            let r = direct_aim(&d, range, *p, aim_tol, 40, &opts);
            direct_s += t.elapsed().as_secs_f64();
            match r {
                Ok(a) => direct.push((*p, a)),
                Err(_) => direct_failed += 1,
            }
        }
        let direct_example = direct.first().map(|(p, a)| {
            format!(
                "; e.g. target {:.1} m, wind {:+.1} m/s: {:.1} kg at {:.2} deg lands at {:.3} m",
                p.target, p.wind, a.mass, a.angle_deg, a.distance
            )
        });
        // The miss of each direct aim, re-simulated at the evaluation tolerance.
        let direct_misses: Vec<f64> = direct
            .iter()
            .map(|(p, a)| {
                match distance_nograd(&d, a.mass, a.angle_deg.to_radians(), p.wind, &eval_opts) {
                    Some(x) => 100.0 * (x - p.target).abs() / p.target,
                    None => 100.0,
                }
            })
            .collect();
        let direct_ms = 1e3 * direct_s / n_direct.max(1) as f64;
        let direct_max = direct_misses.iter().copied().fold(0.0, f64::max);
        let direct_evals =
            direct.iter().map(|(_, a)| a.evals as f64).sum::<f64>() / direct.len().max(1) as f64;

        // Trajectories of the network's aims at a few pairs.
        let mut paths = Vec::new();
        let samples = [
            (30.0, 0.0),
            (50.0, -5.0),
            (50.0, 5.0),
            (70.0, 0.0),
            (85.0, 5.0),
            (60.0, -8.0),
        ];
        for &(target, wind) in &samples {
            let p = Pair { target, wind };
            if !reach.reachable(p) {
                continue;
            }
            let path = no_grad(|| {
                let out = net.forward(&AimNet::inputs(&[p]));
                let (m, a) = range.controls(&out.select(1, 0), &out.select(1, 1));
                let s = shoot(
                    &d,
                    &m.select(0, 0),
                    &a.select(0, 0),
                    &Tensor::scalar(wind),
                    &eval_opts,
                    0.01,
                );
                s.ok()
                    .map(|s| (s.path, s.distance.item(), m.item(), a.item().to_degrees()))
            });
            if let Some((pts, x, m, a)) = path {
                paths.push(Series {
                    label: format!("target {target:.0} m, wind {wind:+.0} m/s: {m:.0} kg, {a:.1} deg, lands at {x:.1} m"),
                    points: pts,
                });
            }
        }

        let mut r = Report::default();
        let mut put = |k: &str, v: serde_json::Value| {
            r.metrics.insert(k.into(), v);
        };
        put("direct_aim_ms", json!(direct_ms));
        put("direct_miss_pct", json!(direct_max));
        put("direct_aims", json!(n_direct));
        put("direct_failed", json!(direct_failed));
        put("direct_shots_mean", json!(direct_evals));
        put("nn_median_miss_pct", json!(nn_median));
        put("nn_p90_miss_pct", json!(nn_p90));
        put(
            "nn_untrained_median_miss_pct",
            json!(quantile(&untrained, 0.5)),
        );
        put("nn_within_half_pct", json!(within));
        put("nn_inference_us", json!(inference_us));
        put("speedup", json!(direct_ms * 1e3 / inference_us));
        put("held_out", json!(n_held));
        put("reach_rejected_frac", json!(reach_rejected));
        put("train_failed_shots", json!(failed_shots));
        put("train_s", json!(train_s));
        put("steps", json!(steps));
        let (near, far) = reach.band(0.0).unwrap_or((f64::NAN, f64::NAN));
        r.summary = vec![
            format!(
                "reach (mass {:.0}-{:.0} kg, angle 0-90 deg): {near:.1}-{far:.1} m without wind; {:.1}% of (target, wind) draws were out of reach and redrawn (band mapped in {reach_s:.1} s)",
                range.lo,
                range.hi,
                100.0 * reach_rejected
            ),
            format!(
                "direct aiming (Newton through the simulator): {direct_ms:.1} ms per aim, {direct_evals:.1} shots with gradient on average, worst miss {direct_max:.4}% over {} pairs ({direct_failed} failed){}",
                direct.len(),
                direct_example.unwrap_or_default()
            ),
            format!(
                "aiming network ({} parameters, {steps} steps of {batch} shots, {train_s:.0} s): held-out median miss {nn_median:.3}% (untrained {:.1}%), 90th percentile {nn_p90:.3}%, {:.1}% of {n_held} pairs within 0.5%",
                net.num_parameters(),
                quantile(&untrained, 0.5),
                100.0 * within
            ),
            format!(
                "one network inference {inference_us:.2} us: {:.0}x faster than a direct aim",
                direct_ms * 1e3 / inference_us
            ),
        ];
        r.curves = vec![
            Curve {
                file: "trajectories.png".into(),
                title: "trebuchet: shots aimed by the network".into(),
                x_label: "distance x (m)".into(),
                y_label: "height (m)".into(),
                series: paths,
                log_y: false,
            },
            curves.curve(
                "training.png",
                "trebuchet: aiming network training",
                "step",
                "miss (% of target distance)",
                &[
                    ("train", "train, RMS relative miss (EMA)"),
                    ("val", "validation, median miss"),
                ],
                true,
            ),
        ];
        Ok(r)
    }
}
