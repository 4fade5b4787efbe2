"""PyTorch eager twin of nabla-bench's `trebuchet-grad`, runnable on its own:

    bench/reference/.venv/bin/python bench/reference/trebuchet_torch.py [--threads 2] [--repeats 10]

One trebuchet shot in float64 (counterweight 90 kg, release angle 45 degrees, wind 0 m/s): three
phases separated by events (the projectile slides until the ground's reaction falls to zero; swings
until its velocity's angle above the horizontal falls to the release angle; flies with quadratic drag
until its height falls to zero), then the landing distance and its gradient w.r.t. (mass, angle in
degrees, wind) by reverse mode. The same equations as crates/nabla-zoo/src/sim/trebuchet.rs and the
same solver as nabla::ode (crates/nabla/src/ode): Tsitouras 5(4) with rtol 1e-6, atol 1e-9, Hairer's
initial step, the PI controller (safety 0.9, factors 0.2..10, beta (0.14, 0.08)), events detected by
sign changes at accepted steps, located by the Illinois method on the cubic Hermite interpolant, and
differentiated by the implicit-function rule (t* = tau - g / g', y* = y(tau) + f (t* - tau)). Each
phase starts at t = 0. Prints one JSON line in the shape of the other reference workloads.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch

torch.set_default_dtype(torch.float64)

# ----- the solver (a port of nabla::ode's adaptive path) ---------------------------------------------

TSIT5_C = [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0]
TSIT5_A = [
    [],
    [0.161],
    [-0.008480655492356989, 0.335480655492357],
    [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
    [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
    [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
]
TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774]
TSIT5_E = [-0.0017800110522257771, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
           0.5823571654525552, -0.45808210592918697, 1.0 / 66.0]
TSIT5_E_T = torch.tensor(TSIT5_E)
ORDER = 5
RTOL, ATOL = 1e-6, 1e-9
SAFETY, MIN_FACTOR, MAX_FACTOR, BETA1, BETA2 = 0.9, 0.2, 10.0, 0.7 / 5.0, 0.4 / 5.0
MAX_STEPS = 100_000


_COEFFS = {}


def lincomb(y, h, coeffs, ks):
    """y + h * sum_i coeffs[i] * ks[i] (two eager ops; the coefficient vectors are made once)."""
    key = tuple(coeffs)
    c = _COEFFS.get(key)
    if c is None:
        c = _COEFFS[key] = torch.tensor(coeffs)
    return torch.addmv(y, torch.stack(ks, 1), c, alpha=h)


def rk_step(f, t, y, k1, h):
    ks = [k1]
    for i in range(1, 6):
        a = TSIT5_A[i]
        idx = [j for j in range(i) if a[j] != 0.0]
        yi = lincomb(y, h, [a[j] for j in idx], [ks[j] for j in idx])
        ks.append(f(t + TSIT5_C[i] * h, yi))
    y_new = lincomb(y, h, TSIT5_B, ks)
    f_new = f(t + h, y_new)
    ks.append(f_new)
    return y_new, ks, f_new


def error_norm(ks, h, y0, y1):
    with torch.no_grad():
        err = h * (torch.stack([k.detach() for k in ks], 1) @ TSIT5_E_T)
        y1d = y1.detach()
        if not bool(torch.isfinite(y1d).all()):
            return math.nan
        scale = ATOL + RTOL * torch.maximum(y0.detach().abs(), y1d.abs())
        return float(torch.sqrt(torch.mean((err / scale) ** 2)))


def rms(v, s):
    return math.sqrt(sum((a / b) ** 2 for a, b in zip(v, s)) / max(len(v), 1))


def initial_step(f, t0, y0, f0, span):
    with torch.no_grad():
        y, fv = y0.detach().tolist(), f0.detach().tolist()
        sc = [ATOL + RTOL * abs(v) for v in y]
        d0, d1 = rms(y, sc), rms(fv, sc)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, span)
        y1 = torch.tensor([a + h0 * b for a, b in zip(y, fv)])
        f1 = f(t0 + h0, y1).tolist()
        d2 = rms([a - b for a, b in zip(f1, fv)], sc) / h0
        h1 = max(h0 * 1e-3, 1e-6) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / ORDER)
        return min(100.0 * h0, h1, span)


def hermite(y0, y1, f0, f1, h, s):
    h01 = s * s * (3.0 - 2.0 * s)
    h10 = s * (1.0 - s) * (1.0 - s)
    h11 = s * s * (s - 1.0)
    return y0 + h01 * (y1 - y0) + h * (h10 * f0 + h11 * f1)


def locate(g, tf, y0, y1, f0, f1, hf, ga, gb, tol=1e-12):
    """Illinois method on the Hermite interpolant (detached), as nabla::ode's `locate`."""
    with torch.no_grad():
        y0, y1, f0, f1 = y0.detach(), y1.detach(), f0.detach(), f1.detach()

        def gt(theta):
            return float(g(tf + theta * hf, hermite(y0, y1, f0, f1, hf, theta)))

        a, fa, b, fb = 0.0, ga, 1.0, gb
        side, theta = 0, 1.0
        for _ in range(200):
            if fb == 0.0 or abs(b - a) <= tol:
                theta = b
                break
            theta = min(max((a * fb - b * fa) / (fb - fa), min(a, b)), max(a, b))
            ft = gt(theta)
            if ft == 0.0 or not math.isfinite(ft):
                break
            if (ft > 0.0) == (fb > 0.0):
                b, fb = theta, ft
                if side == -1:
                    fa /= 2.0
                side = -1
            else:
                a, fa = theta, ft
                if side == 1:
                    fb /= 2.0
                side = 1
            theta = b
        return tf + theta * hf


def event_point(f, g, tf, y, k1, tau):
    """The differentiable crossing: a recorded step to tau, then the implicit-function rule."""
    y_tau, _, f_tau = rk_step(f, tf, y, k1, tau - tf)
    g_val = g(tau, y_tau)
    t_d = torch.tensor(tau, requires_grad=True)
    y_d = y_tau.detach().requires_grad_(True)
    with torch.enable_grad():
        gt, gy = torch.autograd.grad(g(t_d, y_d), (t_d, y_d), allow_unused=True)
    gdot = (0.0 if gt is None else float(gt)) + float(gy @ f_tau.detach())
    if gdot == 0.0 or not math.isfinite(gdot):
        raise RuntimeError(f"event crossed zero tangentially at t = {tau}")
    t_star = tau - g_val / gdot
    return t_star, y_tau + f_tau * (t_star - tau)


def solve_until(f, y0, t1, g):
    """Integrates y' = f(t, y) from (0, y0) until g falls through zero (Direction::Falling)."""
    tf = 0.0
    y = y0
    k1 = f(torch.tensor(tf), y)
    with torch.no_grad():
        g_prev = float(g(tf, y.detach()))
    h = initial_step(f, tf, y, k1, t1 - tf)
    err_prev, rejected_last, steps = 1.0, False, 0
    for _ in range(MAX_STEPS):
        last = tf + 1.01 * h >= t1
        hf = t1 - tf if last else h
        y_new, ks, f_new = rk_step(f, tf, y, k1, hf)
        en = error_norm(ks, hf, y, y_new)
        if not en <= 1.0:
            fac = MIN_FACTOR if not math.isfinite(en) else min(max(SAFETY * en ** -BETA1, MIN_FACTOR), 1.0)
            h = hf * fac
            rejected_last = True
            continue
        hi = 1.0 if rejected_last else MAX_FACTOR
        fac = SAFETY * max(en, 1e-10) ** -BETA1 * err_prev ** BETA2
        h_next = hf * min(max(fac, MIN_FACTOR), hi)
        err_prev, rejected_last = max(en, 1e-4), False
        steps += 1
        tf_new = t1 if last else tf + hf
        with torch.no_grad():
            g_new = float(g(tf_new, y_new.detach()))
        if g_prev > 0.0 and g_new <= 0.0:
            tau = locate(g, tf, y, y_new, k1, f_new, hf, g_prev, g_new)
            t_star, y_star = event_point(f, g, tf, y, k1, tau)
            return t_star, y_star, steps
        if last:
            raise RuntimeError("the event did not happen within the span")
        g_prev = g_new
        tf, y, k1, h = tf_new, y_new, f_new, h_next
    raise RuntimeError("step budget exhausted")
# ----- the trebuchet (same equations as crates/nabla-zoo/src/sim/trebuchet.rs) -----------------------

FOOT, POUND = 0.3048, 0.45359237
H, L1, L2, L3, L4 = 5 * FOOT, 6.792 * FOOT, 1.75 * FOOT, 2.0 * FOOT, 6.833 * FOOT
M_P, R_P, M_ARM = 0.328 * POUND, 0.1245 * FOOT, 10.65 * POUND
RHO, CD, G = 1.0, 1.0, 9.80665
I_ARM = M_ARM * (L1**3 + L2**3) / (3 * (L1 + L2))
D_ARM = (L1 - L2) / 2
K_DRAG = 0.5 * RHO * CD * math.pi * R_P**2 / M_P


def swing_accel(mass, y, on_ground):
    th, ph, ps, dth, dph, dps = y.unbind(0)
    j0 = mass * (L2 * L2) + (I_ARM + M_P * L1 * L1)
    a_coef = mass * (-L2 * L3)
    b_coef = M_P * L1 * L4
    x = ph - th
    s_pt, c_pt = torch.sin(x), torch.cos(x)
    x = th - ps
    s_tp, c_tp = torch.sin(x), torch.cos(x)
    a = a_coef * s_pt
    b = c_tp * b_coef
    dth2, dph2, dps2 = dth * dth, dph * dph, dps * dps
    ac = a_coef * c_pt
    f0 = -(ac * dph2) - s_tp * dps2 * b_coef - torch.cos(th) * ((mass * (-L2) + (M_ARM * D_ARM + M_P * L1)) * G)
    f1 = ac * dth2 - mass * torch.sin(ph) * (G * L3)
    f2 = s_tp * dth2 * b_coef - torch.cos(ps) * (G * M_P * L4)
    m22, m33 = mass * (L3 * L3), M_P * L4 * L4
    # the mass matrix is an arrow: eliminate x1, x2 from the first row, back-substitute
    a_m, b_m = a / m22, b / m33
    pivot = j0 - a_m * a - b_m * b
    x0 = (f0 - a_m * f1 - b_m * f2) / pivot
    xf = (x0, (f1 - a * x0) / m22, (f2 - b * x0) / m33)
    if not on_ground:
        return xf, None
    j_0, j_2 = torch.cos(th) * L1, torch.cos(ps) * L4
    y0 = (j_0 - b_m * j_2) / pivot
    xj = (y0, -(a * y0) / m22, (j_2 - b * y0) / m33)
    c = torch.sin(th) * dth2 * L1 + torch.sin(ps) * dps2 * L4
    n = (c - j_0 * xf[0] - j_2 * xf[2]) / (j_0 * xj[0] + j_2 * xj[2])
    return (xf[0] + n * xj[0], xf[1] + n * xj[1], xf[2] + n * xj[2]), n


def projectile(y):
    th, ph, ps, dth, dph, dps = y.unbind(0)
    st, ct, sp, cp = torch.sin(th), torch.cos(th), torch.sin(ps), torch.cos(ps)
    return (ct * L1 + cp * L4, st * L1 + sp * L4 + H, -(st * dth * L1) - sp * dps * L4, ct * dth * L1 + cp * dps * L4)


def swing_rhs(mass, on_ground):
    def f(t, y):
        (a0, a1, a2), _ = swing_accel(mass, y, on_ground)
        return torch.stack([y[3], y[4], y[5], a0, a1, a2])
    return f


def flight_rhs(wind):
    def f(t, y):
        vx, vy = y[2], y[3]
        rx = vx - wind
        speed = torch.sqrt(rx * rx + vy * vy)
        return torch.stack([vx, vy, -(speed * rx) * K_DRAG, -(speed * vy) * K_DRAG - G])
    return f


def ground_reaction(mass):
    return lambda t, y: swing_accel(mass, y, True)[1]


def release_gap(angle):
    def g(t, y):
        _, _, vx, vy = projectile(y)
        return vy * torch.cos(angle) - vx * torch.sin(angle)
    return g


def landing(t, y):
    return y[1]


def shot(mass, angle_deg, wind):
    """The landing distance and the accepted steps of each phase."""
    angle = angle_deg * (math.pi / 180.0)
    theta0 = math.pi + math.asin(H / L1)
    y0 = torch.tensor([theta0, 0.0, 0.0, 0.0, 0.0, 0.0])
    _, y1, n1 = solve_until(swing_rhs(mass, True), y0, 2.0, ground_reaction(mass))
    _, y2, n2 = solve_until(swing_rhs(mass, False), y1, 4.0, release_gap(angle))
    r = torch.stack(projectile(y2))
    _, y3, n3 = solve_until(flight_rhs(wind), r, 60.0, landing)
    return y3[0], (n1, n2, n3)


def shot_grad(params):
    d, steps = shot(*params)
    return d, torch.autograd.grad(d, params), steps


def main():
    p = argparse.ArgumentParser(description="PyTorch eager reference of nabla-bench's trebuchet-grad")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--round", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    params = [torch.tensor(v, requires_grad=True) for v in (90.0, 45.0, 0.0)]
    t = time.perf_counter()
    d, grad, steps = shot_grad(params)
    first = time.perf_counter() - t
    for _ in range(args.warmup):
        shot_grad(params)
    times, cpu = [], []
    for _ in range(max(1, args.repeats)):
        c, t = time.process_time(), time.perf_counter()
        shot_grad(params)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    r = {"name": "trebuchet-grad", "impl": "pytorch", "threads": args.threads}
    if args.round is not None:
        r["round"] = args.round
    r.update(version=torch.__version__, variant="grad", status="ok", median_s=statistics.median(times),
             min_s=min(times), first_s=first, cpu_median_s=statistics.median(cpu), repeats=len(times),
             warmup=args.warmup, distance=d.item() if not d.requires_grad else d.detach().item(), grad=[g.item() for g in grad], steps=list(steps))
    print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
