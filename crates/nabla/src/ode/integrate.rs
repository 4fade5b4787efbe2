//! The integration loop: step-size control, dense output, events, and the checkpointed replay.

use super::event::{Direction, Event};
use super::lincomb::lincomb;
use super::segment::segment;
use super::step::{
    Rhs, all_finite, error_norm, eval_rhs, hermite, is_const, rk_step, rms, shifted,
};
use super::tableau::Tableau;
use super::{EventRecord, OdeError, Options, Stats};
use crate::{NoGradGuard, Tensor};
use std::sync::Arc;

/// An accepted step, as the planning pass of a checkpointed solve records it.
pub(crate) struct PlanStep {
    /// Time at the start of the step.
    pub tf: f64,
    /// Step size.
    pub h: f64,
    /// Whether it is the last step (ending exactly at `t1`).
    pub last: bool,
    /// Whether it must be replayed on its own (last step, save times or events inside).
    pub special: bool,
    /// The events that fire in it: (index, located time), in time order.
    pub crossings: Vec<(usize, f64)>,
}

/// What a solve produces besides the final state.
#[derive(Default)]
pub(crate) struct Out {
    pub ts: Vec<f64>,
    pub ys: Vec<Tensor>,
    pub events: Vec<EventRecord>,
    /// The terminal event: (index, time, state).
    pub terminal: Option<(usize, Tensor, Tensor)>,
    save_idx: usize,
}

/// A solve in progress.
pub(crate) struct Solver<'s, 'e> {
    pub f: Arc<Rhs>,
    pub tab: &'static Tableau,
    pub opts: &'s Options,
    pub events: &'s [Event<'e>],
    pub t1: f64,
    pub one: Tensor,
    pub stats: Stats,
}

/// The state at the start of a step.
struct At {
    t: Tensor,
    tf: f64,
    y: Tensor,
    k1: Tensor,
}

impl Solver<'_, '_> {
    fn rhs(&mut self, t: &Tensor, y: &Tensor) -> Tensor {
        eval_rhs(&*self.f, t, y, &mut self.stats.rhs_evals)
    }

    fn step(&mut self, at: &At, h: &Tensor, hf: f64) -> super::step::Stepped {
        rk_step(
            &*self.f,
            self.tab,
            &self.one,
            (&at.t, at.tf),
            &at.y,
            &at.k1,
            (h, hf),
            &mut self.stats.rhs_evals,
        )
    }

    /// Emits the save times up to `tf` (the start) with the state `y`.
    pub(crate) fn save_start(&self, out: &mut Out, tf: f64, y: &Tensor) {
        while out.save_idx < self.opts.save_at.len() && self.opts.save_at[out.save_idx] <= tf {
            out.ts.push(self.opts.save_at[out.save_idx]);
            out.ys.push(y.clone());
            out.save_idx += 1;
        }
    }

    fn event_values(&self, tf: f64, y: &Tensor) -> Vec<f64> {
        let _g = NoGradGuard::new();
        let t = Tensor::scalar_of(tf, y.dtype());
        let y = y.detach();
        self.events.iter().map(|e| e.eval(&t, &y).item()).collect()
    }

    /// A first step size, as in Hairer, Nørsett and Wanner's `hinit` (one extra evaluation).
    fn initial_step(&mut self, at: &At) -> f64 {
        let _g = NoGradGuard::new();
        let span = self.t1 - at.tf;
        let y0 = at.y.to_vec::<f64>();
        let f0 = at.k1.to_vec::<f64>();
        let (rtol, atol) = (self.opts.rtol, self.opts.atol);
        let sc: Vec<f64> = y0.iter().map(|y| atol + rtol * y.abs()).collect();
        let (d0, d1) = (rms(&y0, &sc), rms(&f0, &sc));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span);
        let y1: Vec<f64> = y0.iter().zip(&f0).map(|(y, f)| y + h0 * f).collect();
        let y1 = Tensor::from_vec(y1, at.y.shape().clone()).to_dtype(at.y.dtype());
        let f1 = self.rhs(&Tensor::scalar_of(at.tf + h0, at.y.dtype()), &y1);
        let df: Vec<f64> = f1
            .to_vec::<f64>()
            .iter()
            .zip(&f0)
            .map(|(a, b)| a - b)
            .collect();
        let d2 = rms(&df, &sc) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(1.0 / self.tab.order as f64)
        };
        (100.0 * h0).min(h1).min(span)
    }

    /// Integrates from `(t0, y0)`, recording every step (or, with `plan`, only planning: the caller
    /// runs this without recording and replays the plan).
    pub(crate) fn drive(
        &mut self,
        t0: &Tensor,
        y0: &Tensor,
        mut plan: Option<&mut Vec<PlanStep>>,
    ) -> Result<(Tensor, Out), OdeError> {
        let opts = self.opts;
        let emit = plan.is_none();
        let adaptive = self.tab.e.is_some();
        let mut out = Out::default();
        let tf0 = t0.item();
        let k1 = self.rhs(t0, y0);
        if !all_finite(y0) || !all_finite(&k1) {
            return Err(OdeError::NonFinite { t: tf0 });
        }
        let mut at = At {
            t: t0.clone(),
            tf: tf0,
            y: y0.clone(),
            k1,
        };
        self.save_start(&mut out, tf0, y0);
        let mut g_prev = self.event_values(tf0, y0);
        let span = self.t1 - tf0;
        let n_fixed = if adaptive {
            0
        } else {
            let dt = opts.dt.expect("validated");
            ((span / dt) * (1.0 - 1e-12)).ceil().max(1.0) as usize
        };
        let mut h = match (adaptive, opts.dt) {
            (false, _) => span / n_fixed as f64,
            (true, Some(dt)) => dt.min(span),
            (true, None) => self.initial_step(&at),
        };
        let (mut err_prev, mut rejected_last, mut nonfinite_last) = (1.0f64, false, false);
        let mut attempts = 0usize;
        loop {
            let last = if adaptive {
                at.tf + 1.01 * h >= self.t1
            } else {
                self.stats.steps + 1 == n_fixed
            };
            let hf = if last { self.t1 - at.tf } else { h };
            if hf.is_nan() {
                return Err(OdeError::NonFinite { t: at.tf });
            }
            if !last && hf <= 16.0 * f64::EPSILON * at.tf.abs().max(self.t1.abs()) {
                return Err(if nonfinite_last {
                    OdeError::NonFinite { t: at.tf }
                } else {
                    OdeError::StepSizeUnderflow { t: at.tf, h: hf }
                });
            }
            attempts += 1;
            if attempts > opts.max_steps {
                return Err(OdeError::MaxStepsReached {
                    t: at.tf,
                    max_steps: opts.max_steps,
                });
            }
            let ht = if last && !is_const(&at.t) {
                at.t.affine(-1.0, self.t1)
            } else {
                Tensor::scalar_of(hf, y0.dtype())
            };
            let st = self.step(&at, &ht, hf);
            let mut h_next = h;
            if let Some(e) = self.tab.e {
                let en = error_norm(e, &st.ks, hf, &at.y, &st.y, opts.rtol, opts.atol);
                if en.is_nan() || en > 1.0 {
                    self.stats.rejected += 1;
                    nonfinite_last = !en.is_finite();
                    let fac = if nonfinite_last {
                        opts.min_factor
                    } else {
                        (opts.safety * en.powf(-opts.pi.0)).clamp(opts.min_factor, 1.0)
                    };
                    h = hf * fac;
                    rejected_last = true;
                    continue;
                }
                let hi = if rejected_last { 1.0 } else { opts.max_factor };
                let fac = opts.safety * en.max(1e-10).powf(-opts.pi.0) * err_prev.powf(opts.pi.1);
                h_next = hf * fac.clamp(opts.min_factor, hi);
                err_prev = en.max(1e-4);
                rejected_last = false;
                nonfinite_last = false;
            } else if !all_finite(&st.y) {
                return Err(OdeError::NonFinite { t: at.tf });
            }
            self.stats.steps += 1;
            let tf_new = if last { self.t1 } else { at.tf + hf };
            let mut f_new = st.f_new.clone();
            // Events: sign changes of g between the step's ends, located on the interpolant.
            let mut crossings = Vec::new();
            if !self.events.is_empty() {
                let g_new = self.event_values(tf_new, &st.y);
                for (i, ev) in self.events.iter().enumerate() {
                    let (a, b) = (g_prev[i], g_new[i]);
                    let fires = match ev.direction {
                        Direction::Rising => a < 0.0 && b >= 0.0,
                        Direction::Falling => a > 0.0 && b <= 0.0,
                        Direction::Either => (a < 0.0 && b >= 0.0) || (a > 0.0 && b <= 0.0),
                    };
                    if fires {
                        let t_new = Tensor::scalar_of(tf_new, y0.dtype());
                        let fnew = f_new.get_or_insert_with(|| self.rhs(&t_new, &st.y)).clone();
                        let tau = self.locate(i, &at, &st.y, &fnew, hf, (a, b));
                        crossings.push((i, tau));
                    }
                }
                crossings.sort_by(|a, b| a.1.total_cmp(&b.1));
                if let Some(p) = crossings.iter().position(|c| self.events[c.0].terminal) {
                    crossings.truncate(p + 1);
                }
                g_prev = g_new;
            }
            let end = match crossings.last() {
                Some(&(i, tau)) if self.events[i].terminal => tau,
                _ => tf_new,
            };
            let has_save = self
                .opts
                .save_at
                .get(out.save_idx)
                .is_some_and(|&s| s <= end);
            if let Some(plan) = plan.as_deref_mut() {
                plan.push(PlanStep {
                    tf: at.tf,
                    h: hf,
                    last,
                    special: last || has_save || !crossings.is_empty(),
                    crossings: crossings.clone(),
                });
            }
            let t_new = if is_const(&at.t) && is_const(&ht) {
                Tensor::scalar_of(tf_new, y0.dtype())
            } else if is_const(&ht) {
                at.t.add_scalar(hf)
            } else {
                lincomb(&at.t, &ht, &[1.0], &[&self.one])
            };
            if has_save && f_new.is_none() {
                f_new = Some(self.rhs(&t_new, &st.y));
            }
            let done = self.finish_step(
                &mut out,
                &at,
                (&ht, hf),
                &st.y,
                f_new.as_ref(),
                &crossings,
                emit,
            )?;
            if done || last {
                return Ok((st.y, out));
            }
            let k1 = match f_new {
                Some(k) => k,
                None => self.rhs(&t_new, &st.y),
            };
            at = At {
                t: t_new,
                tf: tf_new,
                y: st.y,
                k1,
            };
            h = h_next;
        }
    }

    /// Locates event `i`'s crossing inside a step by the Illinois method on the Hermite
    /// interpolant (detached), to the event's tolerance as a fraction of the step.
    fn locate(
        &self,
        i: usize,
        at: &At,
        y1: &Tensor,
        f1: &Tensor,
        hf: f64,
        (ga, gb): (f64, f64),
    ) -> f64 {
        let _g = NoGradGuard::new();
        let ev = &self.events[i];
        let dtype = at.y.dtype();
        let (y0, y1, f0, f1) = (at.y.detach(), y1.detach(), at.k1.detach(), f1.detach());
        let h = Tensor::scalar_of(hf, dtype);
        let g = |theta: f64| -> f64 {
            let y = hermite(&self.one, &y0, &y1, &f0, &f1, &h, theta, None);
            ev.eval(&Tensor::scalar_of(at.tf + theta * hf, dtype), &y)
                .item()
        };
        let (mut a, mut fa, mut b, mut fb) = (0.0f64, ga, 1.0f64, gb);
        let mut side = 0i8;
        let mut theta = 1.0;
        for _ in 0..200 {
            if fb == 0.0 || (b - a).abs() <= ev.tol {
                theta = b;
                break;
            }
            theta = ((a * fb - b * fa) / (fb - fa)).clamp(a.min(b), a.max(b));
            let ft = g(theta);
            if ft == 0.0 || !ft.is_finite() {
                break;
            }
            if (ft > 0.0) == (fb > 0.0) {
                b = theta;
                fb = ft;
                if side == -1 {
                    fa /= 2.0;
                }
                side = -1;
            } else {
                a = theta;
                fa = ft;
                if side == 1 {
                    fb /= 2.0;
                }
                side = 1;
            }
            theta = b;
        }
        at.tf + theta * hf
    }

    /// Emits the save times inside an accepted step and the differentiable event outputs; returns
    /// whether a terminal event ended the solve.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &mut self,
        out: &mut Out,
        at: &At,
        (ht, hf): (&Tensor, f64),
        y1: &Tensor,
        f1: Option<&Tensor>,
        crossings: &[(usize, f64)],
        emit: bool,
    ) -> Result<bool, OdeError> {
        let terminal = crossings
            .last()
            .filter(|c| self.events[c.0].terminal)
            .map(|c| c.1);
        let end = terminal.unwrap_or(if at.tf + hf >= self.t1 {
            self.t1
        } else {
            at.tf + hf
        });
        while let Some(&s) = self.opts.save_at.get(out.save_idx) {
            if s > end {
                break;
            }
            if emit {
                let f1 = f1.expect("derivative at the step's end");
                let theta = ((s - at.tf) / hf).clamp(0.0, 1.0);
                let d_theta = (!is_const(&at.t) || !is_const(ht)).then(|| {
                    // (s - t) / h with its derivatives, minus its value
                    (at.t.affine(-1.0, s) / ht).add_scalar(-theta)
                });
                let y = hermite(
                    &self.one,
                    &at.y,
                    y1,
                    &at.k1,
                    f1,
                    ht,
                    theta,
                    d_theta.as_ref(),
                );
                out.ys.push(y);
            }
            out.ts.push(s);
            out.save_idx += 1;
        }
        if !emit {
            return Ok(terminal.is_some());
        }
        for &(i, tau) in crossings {
            let (t, y) = self.event_point(i, at, tau)?;
            if self.events[i].terminal {
                out.terminal = Some((i, t, y));
                return Ok(true);
            }
            out.events.push(EventRecord { index: i, t, y });
        }
        Ok(false)
    }

    /// The differentiable time and state of event `i` located at `tau` in the step from `at`:
    /// `t* = tau - g(tau, y(tau)) / ġ` with `ġ = ∂g/∂t + ∂g/∂y·f` a constant, and
    /// `y(t*) = y(tau) + f(tau, y(tau)) (t* - tau)`.
    fn event_point(&mut self, i: usize, at: &At, tau: f64) -> Result<(Tensor, Tensor), OdeError> {
        let dtype = at.y.dtype();
        let hf = tau - at.tf;
        let ht = if is_const(&at.t) {
            Tensor::scalar_of(hf, dtype)
        } else {
            at.t.affine(-1.0, tau)
        };
        let st = self.step(at, &ht, hf);
        let t_tau = Tensor::scalar_of(tau, dtype);
        let f_tau = match st.f_new {
            Some(k) => k,
            None => self.rhs(&t_tau, &st.y),
        };
        let ev = &self.events[i];
        let g = ev.eval(&t_tau, &st.y);
        let gdot = {
            let _off = NoGradGuard::new();
            crate::jvp(
                |xs: &[Tensor]| ev.eval(&xs[0], &xs[1]),
                &[t_tau.clone(), st.y.detach()],
                &[self.one.clone(), f_tau.detach()],
            )
            .1
            .item()
        };
        if gdot == 0.0 || !gdot.is_finite() {
            return Err(OdeError::DegenerateEvent { index: i, t: tau });
        }
        let t_star = lincomb(&t_tau, &g, &[-1.0 / gdot], &[&self.one]);
        let y_star = lincomb(&st.y, &t_star.add_scalar(-tau), &[1.0], &[&f_tau]);
        Ok((t_star, y_star))
    }

    /// Replays a plan with recording: runs of ordinary steps become checkpointed segments of at
    /// most `seg_len` steps; the steps with save times, events or the end are recorded one by one.
    pub(crate) fn replay(
        &mut self,
        t0: &Tensor,
        y0: &Tensor,
        plan: &[PlanStep],
        seg_len: usize,
    ) -> Result<(Tensor, Out), OdeError> {
        let mut out = Out::default();
        let (mut t, mut tf, mut y) = (t0.clone(), t0.item(), y0.clone());
        self.save_start(&mut out, tf, y0);
        let mut i = 0;
        while i < plan.len() {
            if !plan[i].special {
                let mut j = i;
                while j < plan.len() && !plan[j].special && j - i < seg_len {
                    j += 1;
                }
                let steps: Vec<(f64, f64)> = plan[i..j].iter().map(|s| (s.tf, s.h)).collect();
                y = segment(&self.f, self.tab, steps, &y, &t, &mut self.stats.rhs_evals);
                let tf_end = plan[j - 1].tf + plan[j - 1].h;
                t = shifted(&t, tf, tf_end - tf);
                tf = tf_end;
                i = j;
                continue;
            }
            let s = &plan[i];
            let k1 = self.rhs(&t, &y);
            let at = At { t, tf, y, k1 };
            let ht = if s.last && !is_const(&at.t) {
                at.t.affine(-1.0, self.t1)
            } else {
                Tensor::scalar_of(s.h, y0.dtype())
            };
            let st = self.step(&at, &ht, s.h);
            let tf_new = if s.last { self.t1 } else { s.tf + s.h };
            let t_new = if is_const(&at.t) && is_const(&ht) {
                Tensor::scalar_of(tf_new, y0.dtype())
            } else if is_const(&ht) {
                at.t.add_scalar(s.h)
            } else {
                lincomb(&at.t, &ht, &[1.0], &[&self.one])
            };
            let f_new = match st.f_new {
                Some(k) => k,
                None => self.rhs(&t_new, &st.y),
            };
            let done = self.finish_step(
                &mut out,
                &at,
                (&ht, s.h),
                &st.y,
                Some(&f_new),
                &s.crossings,
                true,
            )?;
            if done || s.last {
                return Ok((st.y, out));
            }
            (t, tf, y) = (t_new, tf_new, st.y);
            i += 1;
        }
        Ok((y, out))
    }
}
