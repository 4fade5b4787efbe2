//! The inverted pendulum of Gym's `Pendulum-v1` (`pendulum.py`): dynamics, clipping and cost
//! exactly as there, over `[B]` tensors so that a batch of episodes steps at once and gradients
//! flow through the dynamics. The clips are `clamp`s: their gradient passes where the value is
//! inside the bounds and is zero where it is clipped, as for the true function.

use nabla::Tensor;
use nabla::rand::{Rng, RngExt};
use std::f64::consts::PI;

/// Gravity, m/s².
pub const GRAVITY: f64 = 10.0;
/// Mass, kg.
pub const MASS: f64 = 1.0;
/// Length, m.
pub const LENGTH: f64 = 1.0;
/// Time step, s.
pub const DT: f64 = 0.05;
/// Torques are clipped to ±2.
pub const MAX_TORQUE: f64 = 2.0;
/// Angular speeds are clipped to ±8.
pub const MAX_SPEED: f64 = 8.0;
/// `Pendulum-v1` episodes last 200 steps.
pub const MAX_STEPS: usize = 200;

/// The state of `B` pendulums: angle (0 upright) and angular velocity, `[B]` `f64` tensors.
#[derive(Clone)]
pub struct Pendulum {
    /// Angle, radians.
    pub theta: Tensor,
    /// Angular velocity, radians per second.
    pub theta_dot: Tensor,
}

/// `x` wrapped into [-π, π): `((x + π) mod 2π) - π`. The wrap is piecewise constant, so the
/// gradient is 1 (except at the jumps).
pub fn angle_normalize(x: &Tensor) -> Tensor {
    let turns = (x.add_scalar(PI) * (0.5 / PI)).floor(); // no gradient: piecewise constant
    x - turns * (2.0 * PI)
}

impl Pendulum {
    /// `b` start states drawn as Gym does: θ uniform in [-π, π), θ̇ uniform in [-1, 1).
    pub fn reset<R: Rng + ?Sized>(b: usize, rng: &mut R) -> Pendulum {
        let rows: Vec<(f64, f64)> = (0..b)
            .map(|_| (rng.random_range(-PI..PI), rng.random_range(-1.0..1.0)))
            .collect();
        Pendulum::from_values(
            &rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )
    }

    /// Pendulums at the given angles and velocities.
    pub fn from_values(theta: &[f64], theta_dot: &[f64]) -> Pendulum {
        assert_eq!(theta.len(), theta_dot.len(), "Pendulum: lengths differ");
        Pendulum {
            theta: Tensor::from_vec(theta.to_vec(), [theta.len()]),
            theta_dot: Tensor::from_vec(theta_dot.to_vec(), [theta.len()]),
        }
    }

    /// The observation `[B, 3]`: (cos θ, sin θ, θ̇).
    pub fn observation(&self) -> Tensor {
        Tensor::stack(
            &[self.theta.cos(), self.theta.sin(), self.theta_dot.clone()],
            1,
        )
    }

    /// One step under the torque `u` (`[B]`): the next state and this step's cost
    /// `angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²` (the reward is its negative), with `u` clipped
    /// to ±2 and the new speed to ±8, as in Gym.
    pub fn step(&self, u: &Tensor) -> (Pendulum, Tensor) {
        let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
        let cost = angle_normalize(&self.theta).square()
            + self.theta_dot.square() * 0.1
            + u.square() * 0.001;
        let acc = self.theta.sin() * (3.0 * GRAVITY / (2.0 * LENGTH))
            + &u * (3.0 / (MASS * LENGTH * LENGTH));
        let theta_dot = (&self.theta_dot + acc * DT).clamp(-MAX_SPEED, MAX_SPEED);
        let theta = &self.theta + &theta_dot * DT;
        (Pendulum { theta, theta_dot }, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla::testing::check_grad;

    #[test]
    fn angle_normalize_wraps_into_minus_pi_pi() {
        let x = Tensor::from_vec(vec![0.5f64, PI, -PI, 3.0 * PI + 0.25, -7.0], [5]);
        let want = [0.5, -PI, -PI, -PI + 0.25, -7.0 + 2.0 * PI];
        for (g, w) in angle_normalize(&x).to_vec::<f64>().iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn one_step_matches_gym_arithmetic() {
        let (th, thd, u) = (2.5f64, 7.9f64, 3.0f64);
        let uc = u.clamp(-2.0, 2.0);
        let an = ((th + PI).rem_euclid(2.0 * PI)) - PI;
        let cost = an * an + 0.1 * thd * thd + 0.001 * uc * uc;
        let nthd = (thd + (3.0 * 10.0 / 2.0 * th.sin() + 3.0 * uc) * 0.05).clamp(-8.0, 8.0);
        let nth = th + nthd * 0.05;
        let (s, c) = Pendulum::from_values(&[th], &[thd]).step(&Tensor::from_vec(vec![u], [1]));
        assert!((c.item() - cost).abs() < 1e-12);
        assert!((s.theta_dot.item() - nthd).abs() < 1e-12);
        assert!((s.theta.item() - nth).abs() < 1e-12);
    }

    #[test]
    fn gradient_through_twenty_steps_matches_finite_differences() {
        let f = |xs: &[Tensor]| {
            let mut s = Pendulum {
                theta: xs[0].narrow(0, 0, 1),
                theta_dot: xs[0].narrow(0, 1, 1),
            };
            let mut total = Tensor::scalar(0.0f64);
            for t in 0..20 {
                let (next, c) = s.step(&xs[1].narrow(0, t, 1));
                total = total + c.sum();
                s = next;
            }
            total
        };
        let s0 = Tensor::from_vec(vec![2.0f64, 0.3], [2]);
        let u = Tensor::from_vec(
            (0..20).map(|i| 1.5 * (i as f64 * 0.9).sin()).collect(),
            [20],
        );
        check_grad(f, &[s0, u]).unwrap();
    }
}
