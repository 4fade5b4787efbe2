//! Butcher tableaus of the explicit Runge–Kutta methods, as plain `f64` constants.

use super::Method;

/// An explicit Runge–Kutta tableau. Stage `i` is evaluated at `t + c[i] h` on
/// `y + h * sum_j a[i][j] k_j`; the step's result is `y + h * sum_i b[i] k_i`. An embedded pair
/// has error weights `e` (`b - b̂`, one per stage including the FSAL stage).
pub(crate) struct Tableau {
    pub c: &'static [f64],
    pub a: &'static [&'static [f64]],
    pub b: &'static [f64],
    /// Error weights (`b - b̂`), over the stages and, for FSAL pairs, the last stage
    /// `f(t + h, y_new)`.
    pub e: Option<&'static [f64]>,
    /// First-same-as-last: the result's derivative `f(t + h, y_new)` is a stage (used by the
    /// error estimate and as the next step's first stage).
    pub fsal: bool,
    /// Order of the method (of the propagated solution).
    pub order: u32,
}

const EULER: Tableau = Tableau {
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    e: None,
    fsal: false,
    order: 1,
};

const MIDPOINT: Tableau = Tableau {
    c: &[0.0, 0.5],
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    e: None,
    fsal: false,
    order: 2,
};

const RK4: Tableau = Tableau {
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    e: None,
    fsal: false,
    order: 4,
};

/// Tsitouras (2011), "Runge–Kutta pairs of order 5(4) satisfying only the first column
/// simplifying assumption", Comput. Math. Appl. 62, 770–775.
const TSIT5: Tableau = Tableau {
    c: &[0.0, 0.161, 0.327, 0.9, 0.980_025_540_904_509_7, 1.0],
    a: &[
        &[],
        &[0.161],
        &[-0.008_480_655_492_356_989, 0.335_480_655_492_357],
        &[
            2.897_153_057_105_493_5,
            -6.359_448_489_975_075,
            4.362_295_432_869_581_5,
        ],
        &[
            5.325_864_828_439_257,
            -11.748_883_564_062_828,
            7.495_539_342_889_836_5,
            -0.092_495_066_361_755_25,
        ],
        &[
            5.861_455_442_946_42,
            -12.920_969_317_847_11,
            8.159_367_898_576_159,
            -0.071_584_973_281_401,
            -0.028_269_050_394_068_383,
        ],
    ],
    b: &[
        0.096_460_766_818_065_23,
        0.01,
        0.479_889_650_414_499_6,
        1.379_008_574_103_742,
        -3.290_069_515_436_081,
        2.324_710_524_099_774,
    ],
    e: Some(&[
        -0.001_780_011_052_225_777,
        -0.000_816_434_459_656_746_9,
        0.007_880_878_010_261_995,
        -0.144_711_007_173_262_9,
        0.582_357_165_452_555_2,
        -0.458_082_105_929_186_97,
        1.0 / 66.0,
    ]),
    fsal: true,
    order: 5,
};

/// Dormand and Prince (1980), "A family of embedded Runge–Kutta formulae".
const DOPRI5: Tableau = Tableau {
    c: &[0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0],
    a: &[
        &[],
        &[0.2],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
    ],
    b: &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
    e: Some(&[
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ]),
    fsal: true,
    order: 5,
};

impl Method {
    pub(crate) fn tableau(self) -> &'static Tableau {
        match self {
            Method::Euler => &EULER,
            Method::Midpoint => &MIDPOINT,
            Method::Rk4 => &RK4,
            Method::Tsit5 => &TSIT5,
            Method::Dopri5 => &DOPRI5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order conditions up to order 5 that involve only the weights and nodes, plus the row
    /// sums; and that the embedded weights `b - e` have order 4.
    #[test]
    fn tableaus_satisfy_order_conditions() {
        for m in [
            Method::Euler,
            Method::Midpoint,
            Method::Rk4,
            Method::Tsit5,
            Method::Dopri5,
        ] {
            let tab = m.tableau();
            for (i, row) in tab.a.iter().enumerate() {
                let s: f64 = row.iter().sum();
                assert!((s - tab.c[i]).abs() < 1e-14, "{m:?} row {i}");
            }
            let ac = |i: usize| -> f64 { tab.a[i].iter().zip(tab.c).map(|(a, c)| a * c).sum() };
            for k in 0..tab.order as i32 {
                let s: f64 = tab.b.iter().zip(tab.c).map(|(b, c)| b * c.powi(k)).sum();
                assert!((s - 1.0 / (k + 1) as f64).abs() < 1e-14, "{m:?} b c^{k}");
            }
            if tab.order >= 3 {
                let s: f64 = (0..tab.b.len()).map(|i| tab.b[i] * ac(i)).sum();
                assert!((s - 1.0 / 6.0).abs() < 1e-14, "{m:?} b a c");
            }
            if let Some(e) = tab.e {
                // b̂ = b - e (the last stage is f(t + h, y_new), node 1, with b = 0)
                let mut c = tab.c.to_vec();
                c.push(1.0);
                let mut b = tab.b.to_vec();
                b.push(0.0);
                assert!(e.iter().sum::<f64>().abs() < 1e-14, "{m:?} sum e");
                for k in 0..4 {
                    let s: f64 = (0..b.len()).map(|i| (b[i] - e[i]) * c[i].powi(k)).sum();
                    assert!((s - 1.0 / (k + 1) as f64).abs() < 1e-12, "{m:?} b̂ c^{k}");
                }
            }
        }
    }
}
