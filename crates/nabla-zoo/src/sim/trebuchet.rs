//! A counterweight trebuchet with a sling, as plain Rust over nabla [`Tensor`]s (f64), integrated
//! by [`nabla::ode`] in three phases separated by differentiable events. Every gradient (with
//! respect to the counterweight mass, the release angle, the wind) comes from recording the solve.
//!
//! # The machine
//! The arm turns about a pivot `O = (0, H)`. Its long side (length `L1`) ends at the sling's
//! attachment, its short side (`L2`) at a hinge from which the counterweight (a point mass `M`)
//! hangs on a rigid massless link of length `L3`. The sling is a massless taut rope of length
//! `L4` holding the projectile (a point mass `m`, radius `r` for its drag area). The arm is a
//! uniform rod of mass `m_a` and length `L1 + L2`, so its centre of mass lies `d = (L1 - L2)/2`
//! from the pivot on the long side and its inertia about the pivot is
//! `I_O = m_a (L1^3 + L2^3) / (3 (L1 + L2))` (integral of `lambda s^2` over the rod). The
//! projectile's own rotational inertia in the pouch (`2/5 m r^2`, 1e-4 of `m L4^2`) is neglected.
//! The target lies in the `+x` direction; the ground is `y = 0`.
//!
//! # Generalised coordinates and the Lagrangian
//! `q = (theta, phi, psi)`: `theta` is the angle of the long arm from `+x` (counter-clockwise),
//! `phi` the angle of the counterweight link from straight down, `psi` the angle of the sling
//! from `+x`. With `u = (cos theta, sin theta)`:
//! ```text
//! counterweight  C = O - L2 u + L3 (sin phi, -cos phi)
//! projectile     P = O + L1 u + L4 (cos psi, sin psi)
//! T = 1/2 I_O theta'^2 + 1/2 M |C'|^2 + 1/2 m |P'|^2 = 1/2 q'^T M(q) q'
//! V = g [m_a (H + d sin theta) + M (H - L2 sin theta - L3 cos phi) + m (H + L1 sin theta + L4 sin psi)]
//! ```
//! which gives the mass matrix (note `M_phi,psi = 0`: the counterweight and the sling only couple
//! through the arm)
//! ```text
//!        | J0                 a sin(phi-theta)   b cos(theta-psi) |   J0 = I_O + M L2^2 + m L1^2
//! M(q) = | a sin(phi-theta)   M L3^2             0                |   a  = -M L2 L3
//!        | b cos(theta-psi)   0                  m L4^2           |   b  = m L1 L4
//! ```
//! and the Euler–Lagrange equations `d/dt dL/dq' - dL/dq = Q` become `M(q) q'' = f(q, q') + Q` with
//! ```text
//! f_theta = -a cos(phi-theta) phi'^2 - b sin(theta-psi) psi'^2 - g cos(theta) (m_a d - M L2 + m L1)
//! f_phi   =  a cos(phi-theta) theta'^2 - g M L3 sin(phi)
//! f_psi   =  b sin(theta-psi) theta'^2 - g m L4 cos(psi)
//! ```
//! (the velocity terms are the Coriolis/centripetal terms `-(dM_ij/dq_k - 1/2 dM_jk/dq_i) q_j' q_k'`;
//! the energy-conservation test checks them). The matrix has an "arrow" shape, so the 3x3 system
//! is solved per evaluation by explicit Gaussian elimination in tensor operations: eliminate
//! `phi''` and `psi''` from the first row,
//! `theta'' = (r1 - A r2/M22 - B r3/M33) / (J0 - A^2/M22 - B^2/M33)`, then back-substitute.
//!
//! # The three phases
//! 1. **Sliding.** The projectile slides (without friction) on the ground, pulled by the sling:
//!    the holonomic constraint `y_P(q) = H + L1 sin theta + L4 sin psi = 0` with a Lagrange
//!    multiplier `N` (the ground's vertical reaction on the projectile) adds the generalised force
//!    `Q = N j`, `j = dy_P/dq = (L1 cos theta, 0, L4 cos psi)`. Differentiating the constraint twice,
//!    `j . q'' = L1 sin theta theta'^2 + L4 sin psi psi'^2 =: c`, so with `x_f = M^-1 f` and
//!    `x_j = M^-1 j`: `N = (c - j . x_f) / (j . x_j)` and `q'' = x_f + N x_j`.
//!    The phase ends when `N` falls through zero: the sling lifts the projectile.
//! 2. **Swinging.** The same equations without the constraint, until the angle of the
//!    projectile's velocity above the horizontal falls to the release angle `alpha`:
//!    the event `v_y cos(alpha) - v_x sin(alpha) = |v| sin(beta - alpha)` falls through zero.
//! 3. **Flight.** A point mass under gravity and quadratic drag on its velocity relative to the
//!    wind `w = (w, 0)`: `m a = -m g e_y - 1/2 rho C_d A |v - w| (v - w)`, `A = pi r^2`, until its
//!    height falls through zero. The landing `x` is the shot's distance (from the pivot's foot).
//!
//! Each phase is one [`nabla::ode::solve_with_events`] call (Tsitouras 5(4), adaptive) starting
//! from the previous phase's event state; the event times are differentiable (implicit-function
//! rule in the solver), so the distance is differentiable in the mass, the angle and the wind.
//!
//! # Reference design
//! The design behind the published Julia/Flux figures, converted to SI units: pivot height 5 ft,
//! long arm 6.792 ft, short arm 1.75 ft, counterweight link 2 ft, sling 6.833 ft, projectile
//! 0.328 lb of radius 0.1245 ft, arm 10.65 lb, air density 1 kg/m^3, drag coefficient 1,
//! g = 9.80665 m/s^2. At rest the arm's long tip touches the ground behind the pivot, the sling
//! lies flat on the ground and the counterweight hangs straight down.

use nabla::Tensor;
use nabla::ode::{Direction, Event, OdeError, Options, solve_with_events};
use std::f64::consts::PI;

/// One foot in metres.
pub const FOOT: f64 = 0.3048;
/// One pound in kilograms.
pub const POUND: f64 = 0.453_592_37;

/// The fixed parameters of a trebuchet (SI units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    /// Height of the pivot above the ground `H` (m).
    pub pivot_height: f64,
    /// Long arm, pivot to sling attachment `L1` (m).
    pub long_arm: f64,
    /// Short arm, pivot to counterweight hinge `L2` (m).
    pub short_arm: f64,
    /// Counterweight link, hinge to counterweight `L3` (m).
    pub weight_arm: f64,
    /// Sling length `L4` (m).
    pub sling: f64,
    /// Projectile mass `m` (kg).
    pub projectile_mass: f64,
    /// Projectile radius `r` (m).
    pub projectile_radius: f64,
    /// Arm mass `m_a` (kg), a uniform rod.
    pub arm_mass: f64,
    /// Air density `rho` (kg/m^3).
    pub air_density: f64,
    /// Drag coefficient `C_d`.
    pub drag_coefficient: f64,
    /// Gravity `g` (m/s^2).
    pub gravity: f64,
}

impl Default for Design {
    fn default() -> Design {
        Design::reference()
    }
}

impl Design {
    /// The reference design (see the module docs), in SI units.
    pub fn reference() -> Design {
        Design {
            pivot_height: 5.0 * FOOT,
            long_arm: 6.792 * FOOT,
            short_arm: 1.75 * FOOT,
            weight_arm: 2.0 * FOOT,
            sling: 6.833 * FOOT,
            projectile_mass: 0.328 * POUND,
            projectile_radius: 0.1245 * FOOT,
            arm_mass: 10.65 * POUND,
            air_density: 1.0,
            drag_coefficient: 1.0,
            gravity: 9.80665,
        }
    }

    /// Inertia of the arm (uniform rod) about the pivot.
    pub fn arm_inertia(&self) -> f64 {
        let (l1, l2) = (self.long_arm, self.short_arm);
        self.arm_mass * (l1.powi(3) + l2.powi(3)) / (3.0 * (l1 + l2))
    }

    /// Distance of the arm's centre of mass from the pivot, on the long side.
    pub fn arm_com(&self) -> f64 {
        (self.long_arm - self.short_arm) / 2.0
    }

    /// Drag deceleration per squared speed, `rho C_d pi r^2 / (2 m)` (1/m).
    pub fn drag_per_mass(&self) -> f64 {
        0.5 * self.air_density * self.drag_coefficient * PI * self.projectile_radius.powi(2)
            / self.projectile_mass
    }

    /// The state at rest, `(theta, phi, psi, theta', phi', psi')`: the long tip on the ground
    /// behind the pivot, the sling flat on the ground, the counterweight hanging down.
    pub fn rest_state(&self) -> [f64; 6] {
        let theta = PI + (self.pivot_height / self.long_arm).asin();
        [theta, 0.0, 0.0, 0.0, 0.0, 0.0]
    }
}

/// The swing's state split into components: `q = (theta, phi, psi)` and `q'`.
pub struct SwingState {
    /// Generalised coordinates.
    pub q: [Tensor; 3],
    /// Their rates.
    pub qd: [Tensor; 3],
}

impl SwingState {
    /// Splits a `[6]` state tensor.
    pub fn from_tensor(y: &Tensor) -> SwingState {
        let c = |i| y.select(0, i);
        SwingState {
            q: [c(0), c(1), c(2)],
            qd: [c(3), c(4), c(5)],
        }
    }
}

/// The coefficients of the swing's equations that depend on the counterweight mass alone,
/// computed once per phase rather than at every evaluation of the right-hand side.
#[derive(Clone)]
pub struct MassTerms {
    /// `J0 = I_O + M L2^2 + m L1^2`.
    j0: Tensor,
    /// `a = -M L2 L3`.
    a_coef: Tensor,
    /// `M L3^2`.
    m22: Tensor,
    /// `g (m_a d - M L2 + m L1)`, the gravity torque's factor on the arm.
    arm_gravity: Tensor,
    /// `g M L3`.
    weight_gravity: Tensor,
}

impl MassTerms {
    /// The terms for counterweight `mass` (kg, a 0-d tensor).
    pub fn new(d: &Design, mass: &Tensor) -> MassTerms {
        let (l1, l2, l3, m, g) = (
            d.long_arm,
            d.short_arm,
            d.weight_arm,
            d.projectile_mass,
            d.gravity,
        );
        MassTerms {
            j0: mass * (l2 * l2) + (d.arm_inertia() + m * l1 * l1),
            a_coef: mass * (-l2 * l3),
            m22: mass * (l3 * l3),
            arm_gravity: mass * (-l2 * g) + (d.arm_mass * d.arm_com() + m * l1) * g,
            weight_gravity: mass * (g * l3),
        }
    }
}

/// The mass matrix's entries (arrow shape) and the right-hand side `f(q, q')` of the swing.
struct Dynamics<'a> {
    j0: &'a Tensor,
    a: Tensor,
    b: Tensor,
    m22: &'a Tensor,
    m33: f64,
    f: [Tensor; 3],
}

fn dynamics<'a>(d: &Design, mt: &'a MassTerms, s: &SwingState) -> Dynamics<'a> {
    let [th, ph, ps] = &s.q;
    let [dth, dph, dps] = &s.qd;
    let (l1, l4, m, g) = (d.long_arm, d.sling, d.projectile_mass, d.gravity);
    let b_coef = m * l1 * l4;
    let (s_pt, c_pt) = {
        let x = ph - th;
        (x.sin(), x.cos())
    };
    let (s_tp, c_tp) = {
        let x = th - ps;
        (x.sin(), x.cos())
    };
    let a = &mt.a_coef * &s_pt;
    let b = &c_tp * b_coef;
    let ac = &mt.a_coef * &c_pt;
    let f0 = -(&ac * dph.square() + &s_tp * dps.square() * b_coef + th.cos() * &mt.arm_gravity);
    let f1 = &ac * dth.square() - ph.sin() * &mt.weight_gravity;
    let f2 = (&s_tp * dth.square() * b_coef) - ps.cos() * (g * m * l4);
    Dynamics {
        j0: &mt.j0,
        a,
        b,
        m22: &mt.m22,
        m33: m * l4 * l4,
        f: [f0, f1, f2],
    }
}

/// The factors of the elimination: `A/M22`, `B/M33` and the pivot `J0 - A^2/M22 - B^2/M33`.
struct Elimination {
    a_m: Tensor,
    b_m: Tensor,
    pivot: Tensor,
}

impl Dynamics<'_> {
    fn eliminate(&self) -> Elimination {
        let a_m = &self.a / self.m22;
        let b_m = &self.b / self.m33;
        let pivot = self.j0 - &a_m * &self.a - &b_m * &self.b;
        Elimination { a_m, b_m, pivot }
    }

    /// Solves `M x = r` by eliminating `x1, x2` from the first row (the matrix is an arrow).
    fn solve(&self, e: &Elimination, r: [&Tensor; 3]) -> [Tensor; 3] {
        let x0 = (r[0] - &e.a_m * r[1] - &e.b_m * r[2]) / &e.pivot;
        let x1 = (r[1] - &self.a * &x0) / self.m22;
        let x2 = (r[2] - &self.b * &x0) / self.m33;
        [x0, x1, x2]
    }

    /// Solves `M x = (r0, 0, r2)`.
    fn solve_no_middle(&self, e: &Elimination, r0: &Tensor, r2: &Tensor) -> [Tensor; 3] {
        let x0 = (r0 - &e.b_m * r2) / &e.pivot;
        let x1 = -(&self.a * &x0) / self.m22;
        let x2 = (r2 - &self.b * &x0) / self.m33;
        [x0, x1, x2]
    }
}

/// The generalised accelerations `q''` of the swing, and with `on_ground` (phase 1) also the
/// ground's vertical reaction `N` on the projectile (N).
pub fn swing_accel(
    d: &Design,
    mass: &MassTerms,
    s: &SwingState,
    on_ground: bool,
) -> ([Tensor; 3], Option<Tensor>) {
    let dy = dynamics(d, mass, s);
    let [f0, f1, f2] = &dy.f;
    let e = dy.eliminate();
    let xf = dy.solve(&e, [f0, f1, f2]);
    if !on_ground {
        return (xf, None);
    }
    let [th, _, ps] = &s.q;
    let [dth, _, dps] = &s.qd;
    let (j0, j2) = (th.cos() * d.long_arm, ps.cos() * d.sling);
    let xj = dy.solve_no_middle(&e, &j0, &j2);
    let c = th.sin() * dth.square() * d.long_arm + ps.sin() * dps.square() * d.sling;
    let n = (c - &j0 * &xf[0] - &j2 * &xf[2]) / (&j0 * &xj[0] + &j2 * &xj[2]);
    let [x0, x1, x2] = xf;
    let [y0, y1, y2] = xj;
    ([x0 + &n * y0, x1 + &n * y1, x2 + &n * y2], Some(n))
}

/// The swing's total energy `1/2 q'^T M(q) q' + V(q)` (J) for a `[6]` state (conserved in phases
/// 1 and 2: the ground's reaction does no work on a frictionless slide).
pub fn swing_energy(d: &Design, mass: &Tensor, y: &Tensor) -> Tensor {
    let s = SwingState::from_tensor(y);
    let mt = MassTerms::new(d, mass);
    let dy = dynamics(d, &mt, &s);
    let [th, ph, ps] = &s.q;
    let [dth, dph, dps] = &s.qd;
    let kinetic = (dy.j0 * dth.square() + dy.m22 * dph.square() + dps.square() * dy.m33) * 0.5
        + &dy.a * dth * dph
        + &dy.b * dth * dps;
    let (h, g, m) = (d.pivot_height, d.gravity, d.projectile_mass);
    let potential = (th.sin() * (d.arm_mass * d.arm_com()) + d.arm_mass * h) * g
        + mass * (h - th.sin() * d.short_arm - ph.cos() * d.weight_arm) * g
        + (th.sin() * d.long_arm + ps.sin() * d.sling + h) * (m * g);
    kinetic + potential
}

/// The projectile's position and velocity `(x, y, v_x, v_y)` during the swing.
pub fn projectile(d: &Design, s: &SwingState) -> [Tensor; 4] {
    let [th, _, ps] = &s.q;
    let [dth, _, dps] = &s.qd;
    let (l1, l4) = (d.long_arm, d.sling);
    let (st, ct, sp, cp) = (th.sin(), th.cos(), ps.sin(), ps.cos());
    [
        &ct * l1 + &cp * l4,
        &st * l1 + &sp * l4 + d.pivot_height,
        -(&st * dth * l1) - &sp * dps * l4,
        &ct * dth * l1 + &cp * dps * l4,
    ]
}

/// The right-hand side of phases 1 (`on_ground`) and 2: `y = (q, q')`, `y' = (q', q'')`.
pub fn swing_rhs(
    d: Design,
    mass: Tensor,
    on_ground: bool,
) -> impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static {
    let mt = MassTerms::new(&d, &mass);
    move |_t: &Tensor, y: &Tensor| {
        let s = SwingState::from_tensor(y);
        let ([a0, a1, a2], _) = swing_accel(&d, &mt, &s, on_ground);
        let [v0, v1, v2] = s.qd;
        Tensor::stack(&[v0, v1, v2, a0, a1, a2], 0)
    }
}

/// The ground's vertical reaction on the sliding projectile (N): phase 1's event function.
pub fn ground_reaction(d: &Design, mass: &Tensor, y: &Tensor) -> Tensor {
    ground_reaction_with(d, &MassTerms::new(d, mass), y)
}

/// [`ground_reaction`] with the mass's terms computed beforehand.
pub fn ground_reaction_with(d: &Design, mass: &MassTerms, y: &Tensor) -> Tensor {
    let s = SwingState::from_tensor(y);
    swing_accel(d, mass, &s, true)
        .1
        .expect("on_ground gives the reaction")
}

/// Phase 2's event function `v_y cos(alpha) - v_x sin(alpha) = |v| sin(beta - alpha)`, `beta` the
/// angle of the projectile's velocity above the horizontal: it falls through zero at release.
pub fn release_gap(d: &Design, angle: &Tensor, y: &Tensor) -> Tensor {
    let [_, _, vx, vy] = projectile(d, &SwingState::from_tensor(y));
    vy * angle.cos() - vx * angle.sin()
}

/// The right-hand side of the flight: `y = (x, h, v_x, v_y)`, gravity and quadratic drag on the
/// velocity relative to the horizontal wind.
pub fn flight_rhs(
    d: Design,
    wind: Tensor,
) -> impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static {
    let k = d.drag_per_mass();
    move |_t: &Tensor, y: &Tensor| {
        let (vx, vy) = (y.select(0, 2), y.select(0, 3));
        let rx = &vx - &wind;
        let speed = (rx.square() + vy.square()).sqrt();
        let ax = -(&speed * &rx) * k;
        let ay = -(&speed * &vy) * k - d.gravity;
        Tensor::stack(&[vx, vy, ax, ay], 0)
    }
}

/// Why a shot could not be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShotError {
    /// The solver failed.
    #[error("trebuchet, {phase}: {source}")]
    Ode {
        /// Which phase.
        phase: &'static str,
        /// The solver's error.
        source: OdeError,
    },
    /// A phase's ending event did not happen within its time span.
    #[error("trebuchet: {0} did not happen within its time span")]
    NoEvent(&'static str),
}

/// The longest each phase may last (s) before the shot counts as failed.
pub const PHASE_SPANS: [f64; 3] = [2.0, 4.0, 60.0];

/// A simulated shot. Every tensor is differentiable with respect to the mass, angle and wind.
#[derive(Debug, Clone)]
pub struct Shot {
    /// Landing `x` (m) from the pivot's foot.
    pub distance: Tensor,
    /// Duration of each phase (s).
    pub durations: [Tensor; 3],
    /// The projectile's `(x, y, v_x, v_y)` at release.
    pub release: Tensor,
    /// Accepted solver steps of each phase.
    pub steps: [usize; 3],
    /// The projectile's path `(x, y)`, when asked for (sampled every `path_dt` seconds).
    pub path: Vec<(f64, f64)>,
}

/// The solver options of a shot: Tsit5 with the given tolerances.
pub fn shot_options(rtol: f64, atol: f64) -> Options {
    Options::default().rtol(rtol).atol(atol)
}

fn run_phase<F>(
    phase: &'static str,
    f: F,
    y0: &Tensor,
    span: f64,
    event: Event<'_>,
    opts: &Options,
) -> Result<nabla::ode::Solution, ShotError>
where
    F: Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
{
    let t0 = Tensor::scalar(0.0f64);
    let sol = solve_with_events(f, &t0, span, y0, &[event], opts)
        .map_err(|source| ShotError::Ode { phase, source })?;
    if sol.event != Some(0) {
        return Err(ShotError::NoEvent(phase));
    }
    Ok(sol)
}

/// Simulates one shot: counterweight `mass` (kg), release `angle` (rad), horizontal `wind` (m/s),
/// all 0-d f64 tensors. With `path_dt > 0` the projectile's path is sampled for plotting.
pub fn shoot(
    d: &Design,
    mass: &Tensor,
    angle: &Tensor,
    wind: &Tensor,
    opts: &Options,
    path_dt: f64,
) -> Result<Shot, ShotError> {
    let grid = |span: f64| -> Vec<f64> {
        if path_dt > 0.0 {
            (0..)
                .map(|i| i as f64 * path_dt)
                .take_while(|&t| t < span)
                .collect()
        } else {
            Vec::new()
        }
    };
    let mut path = Vec::new();
    let swing_path = |sol: &nabla::ode::Solution, path: &mut Vec<(f64, f64)>| {
        for y in &sol.ys {
            let [x, h, _, _] = projectile(d, &SwingState::from_tensor(y));
            path.push((x.item(), h.item()));
        }
    };
    let y0 = Tensor::from_vec(d.rest_state().to_vec(), [6]);

    // Phase 1: sliding, until the ground's reaction falls through zero.
    let o1 = opts.clone().save_at(grid(PHASE_SPANS[0]));
    let mt = MassTerms::new(d, mass);
    let lift = Event::new(|_t: &Tensor, y: &Tensor| ground_reaction_with(d, &mt, y))
        .direction(Direction::Falling);
    let s1 = run_phase(
        "the lift-off",
        swing_rhs(*d, mass.clone(), true),
        &y0,
        PHASE_SPANS[0],
        lift,
        &o1,
    )?;
    swing_path(&s1, &mut path);

    // Phase 2: swinging, until the velocity's angle above the horizontal falls to `angle`.
    let o2 = opts.clone().save_at(grid(PHASE_SPANS[1]));
    let release = Event::new(|_t: &Tensor, y: &Tensor| release_gap(d, angle, y))
        .direction(Direction::Falling);
    let s2 = run_phase(
        "the release",
        swing_rhs(*d, mass.clone(), false),
        &s1.y,
        PHASE_SPANS[1],
        release,
        &o2,
    )?;
    swing_path(&s2, &mut path);

    // Phase 3: flight with drag, until the projectile's height falls through zero.
    let r = Tensor::stack(&projectile(d, &SwingState::from_tensor(&s2.y)), 0);
    let o3 = opts.clone().save_at(grid(PHASE_SPANS[2]));
    let land = Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 1)).direction(Direction::Falling);
    let s3 = run_phase(
        "the landing",
        flight_rhs(*d, wind.clone()),
        &r,
        PHASE_SPANS[2],
        land,
        &o3,
    )?;
    for y in &s3.ys {
        path.push((y.select(0, 0).item(), y.select(0, 1).item()));
    }
    let distance = s3.y.select(0, 0);
    path.push((distance.item(), 0.0));
    Ok(Shot {
        distance,
        durations: [s1.t, s2.t, s3.t],
        release: r,
        steps: [s1.stats.steps, s2.stats.steps, s3.stats.steps],
        path,
    })
}
