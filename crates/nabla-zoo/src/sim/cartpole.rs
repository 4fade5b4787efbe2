//! Cart-pole (Barto, Sutton & Anderson 1983) with the constants and the explicit Euler step of
//! Gym's `CartPole-v0` (`cartpole.py`, kinematics integrator `"euler"`), over `[B]` tensors so
//! that a batch of episodes steps at once and gradients flow through the dynamics.

use nabla::Tensor;
use nabla::rand::{Rng, RngExt};

/// Gravity, m/s².
pub const GRAVITY: f64 = 9.8;
/// Cart mass, kg.
pub const MASS_CART: f64 = 1.0;
/// Pole mass, kg.
pub const MASS_POLE: f64 = 0.1;
/// Cart plus pole.
pub const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
/// Half the pole's length, m.
pub const LENGTH: f64 = 0.5;
/// Pole mass times half-length.
pub const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
/// Magnitude of the push, N.
pub const FORCE_MAG: f64 = 10.0;
/// Time step, s.
pub const TAU: f64 = 0.02;
/// The episode fails when |θ| exceeds 12 degrees.
pub const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// The episode fails when |x| exceeds 2.4 m.
pub const X_LIMIT: f64 = 2.4;
/// `CartPole-v0` episodes are capped at 200 steps.
pub const MAX_STEPS: usize = 200;

/// The state of `B` cart-poles: position, velocity, pole angle (0 upright, radians) and angular
/// velocity, each a `[B]` `f64` tensor.
#[derive(Clone)]
pub struct CartPole {
    /// Cart position.
    pub x: Tensor,
    /// Cart velocity.
    pub x_dot: Tensor,
    /// Pole angle from upright.
    pub theta: Tensor,
    /// Pole angular velocity.
    pub theta_dot: Tensor,
}

impl CartPole {
    /// `b` start states drawn as Gym does: every variable uniform in [-0.05, 0.05].
    pub fn reset<R: Rng + ?Sized>(b: usize, rng: &mut R) -> CartPole {
        CartPole::reset_within(b, 0.05, rng)
    }

    /// `b` start states with every variable uniform in [-r, r].
    pub fn reset_within<R: Rng + ?Sized>(b: usize, r: f64, rng: &mut R) -> CartPole {
        // per episode the four variables in Gym's order (x, ẋ, θ, θ̇)
        let rows: Vec<[f64; 4]> = (0..b)
            .map(|_| std::array::from_fn(|_| rng.random_range(-r..r)))
            .collect();
        let col = |k: usize| Tensor::from_vec(rows.iter().map(|r| r[k]).collect::<Vec<f64>>(), [b]);
        CartPole {
            x: col(0),
            x_dot: col(1),
            theta: col(2),
            theta_dot: col(3),
        }
    }

    /// Number of episodes.
    pub fn batch(&self) -> usize {
        self.x.dims()[0]
    }

    /// The observation `[B, 4]`: (x, ẋ, θ, θ̇).
    pub fn observation(&self) -> Tensor {
        Tensor::stack(
            &[&self.x, &self.x_dot, &self.theta, &self.theta_dot].map(Clone::clone),
            1,
        )
    }

    /// One step of 0.02 s under the horizontal force `force` (`[B]`, newtons), explicit Euler
    /// exactly as Gym's `cartpole.py`: positions advance with the old velocities.
    pub fn step(&self, force: &Tensor) -> CartPole {
        let (cos, sin) = (self.theta.cos(), self.theta.sin());
        let temp = (force + self.theta_dot.square() * &sin * POLE_MASS_LENGTH) * (1.0 / TOTAL_MASS);
        let denom = (cos.square() * (-MASS_POLE / TOTAL_MASS)).add_scalar(4.0 / 3.0) * LENGTH;
        let theta_acc = (&sin * GRAVITY - &cos * &temp) / denom;
        let x_acc = &temp - &theta_acc * &cos * (POLE_MASS_LENGTH / TOTAL_MASS);
        CartPole {
            x: &self.x + &self.x_dot * TAU,
            x_dot: &self.x_dot + x_acc * TAU,
            theta: &self.theta + &self.theta_dot * TAU,
            theta_dot: &self.theta_dot + theta_acc * TAU,
        }
    }

    /// Which episodes are in a failed state (|x| > 2.4 or |θ| > 12°), Gym's termination rule.
    pub fn failed(&self) -> Vec<bool> {
        let x = self.x.to_vec::<f64>();
        let th = self.theta.to_vec::<f64>();
        x.iter()
            .zip(&th)
            .map(|(x, t)| x.abs() > X_LIMIT || t.abs() > THETA_LIMIT)
            .collect()
    }
}

/// Episode lengths under Gym's rules for the deterministic controller `force_of` (observation
/// `[B, 4]` to force `[B]`): each episode runs until it fails (the failing step counts) or
/// reaches 200 steps. Runs the `b` episodes side by side.
pub fn episode_lengths(start: CartPole, mut force_of: impl FnMut(&Tensor) -> Tensor) -> Vec<usize> {
    let b = start.batch();
    let mut len = vec![0usize; b];
    let mut alive = vec![true; b];
    let mut s = start;
    for t in 0..MAX_STEPS {
        let f = force_of(&s.observation());
        s = s.step(&f);
        for (i, failed) in s.failed().into_iter().enumerate() {
            if alive[i] {
                len[i] = t + 1;
                if failed {
                    alive[i] = false;
                    if std::env::var("CP_FAIL").is_ok() {
                        eprintln!(
                            "fail t={} x={:.2} th={:.3}",
                            t + 1,
                            s.x.to_vec::<f64>()[i],
                            s.theta.to_vec::<f64>()[i]
                        );
                    }
                }
            }
        }
        if !alive.iter().any(|a| *a) {
            break;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla::testing::check_grad;

    fn one(v: [f64; 4]) -> CartPole {
        let t = |a: f64| Tensor::from_vec(vec![a], [1]);
        CartPole {
            x: t(v[0]),
            x_dot: t(v[1]),
            theta: t(v[2]),
            theta_dot: t(v[3]),
        }
    }

    #[test]
    fn one_step_matches_gym_arithmetic() {
        // Gym's formulas evaluated by hand in f64 for one state and a push to the right.
        let (x, xd, th, thd) = (0.01f64, -0.02f64, 0.03f64, 0.04f64);
        let f = 10.0f64;
        let temp = (f + POLE_MASS_LENGTH * thd * thd * th.sin()) / TOTAL_MASS;
        let thacc = (GRAVITY * th.sin() - th.cos() * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * th.cos() * th.cos() / TOTAL_MASS));
        let xacc = temp - POLE_MASS_LENGTH * thacc * th.cos() / TOTAL_MASS;
        let want = [
            x + TAU * xd,
            xd + TAU * xacc,
            th + TAU * thd,
            thd + TAU * thacc,
        ];
        let s = one([x, xd, th, thd]).step(&Tensor::from_vec(vec![f], [1]));
        let got = [
            s.x.item(),
            s.x_dot.item(),
            s.theta.item(),
            s.theta_dot.item(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn failure_and_lengths_follow_gym() {
        assert_eq!(one([2.41, 0.0, 0.0, 0.0]).failed(), [true]);
        assert_eq!(one([0.0, 0.0, 0.21, 0.0]).failed(), [true]);
        assert_eq!(one([2.39, 0.0, 0.2, 0.0]).failed(), [false]);
        // always pushing right: the pole falls left within a few dozen steps
        let n = episode_lengths(one([0.0; 4]), |o| o.select(1, 0).ones_like() * FORCE_MAG);
        assert!(n[0] > 5 && n[0] < 60, "{n:?}");
    }

    #[test]
    fn gradient_through_ten_steps_matches_finite_differences() {
        let f = |xs: &[Tensor]| {
            let mut s = CartPole {
                x: xs[0].select(0, 0).reshape([1]),
                x_dot: xs[0].select(0, 1).reshape([1]),
                theta: xs[0].select(0, 2).reshape([1]),
                theta_dot: xs[0].select(0, 3).reshape([1]),
            };
            for t in 0..10 {
                s = s.step(&(&xs[1].select(0, t).reshape([1]) * FORCE_MAG));
            }
            (s.theta.square() + s.x.square() * 0.5 + s.theta_dot).sum()
        };
        let s0 = Tensor::from_vec(vec![0.01f64, -0.02, 0.03, 0.04], [4]);
        let u = Tensor::from_vec((0..10).map(|i| (i as f64 * 0.7).sin()).collect(), [10]);
        check_grad(f, &[s0, u]).unwrap();
    }
}
