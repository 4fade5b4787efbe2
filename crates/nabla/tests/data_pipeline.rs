//! Data sets, loaders and augmentation.

use nabla::data::{Augment, DataError, DataLoader, Targets, TensorDataset, datasets};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::collections::BTreeSet;

fn numbered(n: usize) -> TensorDataset {
    // Row i holds [i, i + 0.5] so that inputs can be checked against labels.
    let v: Vec<f32> = (0..n).flat_map(|i| [i as f32, i as f32 + 0.5]).collect();
    TensorDataset::new(Tensor::from_vec(v, [n, 2]), (0..n).collect::<Vec<_>>())
}

fn epoch_labels(l: &DataLoader, epoch: u64) -> Vec<Vec<usize>> {
    l.epoch(epoch)
        .map(|(x, y)| {
            let labels = y.labels().unwrap().to_vec();
            let xs = x.to_vec::<f32>();
            for (k, &lab) in labels.iter().enumerate() {
                assert_eq!(xs[2 * k], lab as f32, "inputs follow their labels");
                assert_eq!(xs[2 * k + 1], lab as f32 + 0.5);
            }
            labels
        })
        .collect()
}

// ----- loader --------------------------------------------------------------------------------

#[test]
fn same_seed_same_batches() {
    let a = DataLoader::new(numbered(103), 10).shuffle(42);
    let b = DataLoader::new(numbered(103), 10).shuffle(42);
    for epoch in 0..3 {
        assert_eq!(epoch_labels(&a, epoch), epoch_labels(&b, epoch));
    }
    let c = DataLoader::new(numbered(103), 10).shuffle(43);
    assert_ne!(epoch_labels(&a, 0), epoch_labels(&c, 0));
}

#[test]
fn epochs_differ_and_cover_every_sample_once() {
    let l = DataLoader::new(numbered(103), 10).shuffle(7);
    let e0 = epoch_labels(&l, 0);
    let e1 = epoch_labels(&l, 1);
    assert_ne!(e0, e1);
    for e in [&e0, &e1] {
        assert_eq!(e.len(), 11);
        assert!(e[..10].iter().all(|b| b.len() == 10));
        assert_eq!(e[10].len(), 3, "last batch kept");
        let flat: Vec<usize> = e.iter().flatten().copied().collect();
        assert_eq!(flat.len(), 103);
        assert_eq!(flat.iter().collect::<BTreeSet<_>>().len(), 103);
    }
    // Shuffled, not the identity.
    assert_ne!(e0.concat(), (0..103).collect::<Vec<_>>());
}

#[test]
fn drop_last_and_sequential() {
    let l = DataLoader::new(numbered(103), 10)
        .shuffle(7)
        .drop_last(true);
    let e = epoch_labels(&l, 0);
    assert_eq!(e.len(), 10);
    assert!(e.iter().all(|b| b.len() == 10));
    let flat: BTreeSet<usize> = e.iter().flatten().copied().collect();
    assert_eq!(flat.len(), 100);
    let seq = DataLoader::new(numbered(25), 10);
    assert_eq!(
        epoch_labels(&seq, 3).concat(),
        (0..25).collect::<Vec<_>>(),
        "no shuffle: stored order in every epoch"
    );
    assert_eq!(seq.order(0), seq.clone().shuffle(1).sequential().order(9));
}

#[test]
fn tensor_targets_batch_with_their_inputs() {
    let x = Tensor::arange(0.0, 20.0, 1.0, DType::F64).reshape([10, 2]);
    let y = Tensor::arange(0.0, 10.0, 1.0, DType::F64).reshape([10, 1]);
    let l = DataLoader::new(TensorDataset::new(x, y), 4).shuffle(3);
    let mut seen = 0;
    for (x, y) in l.epoch(0) {
        let Targets::Tensor(y) = y else {
            panic!("tensor targets")
        };
        assert_eq!(y.dims()[0], x.dims()[0]);
        let (xs, ys) = (x.to_vec::<f64>(), y.to_vec::<f64>());
        for (k, v) in ys.iter().enumerate() {
            assert_eq!(xs[2 * k], 2.0 * v);
        }
        seen += ys.len();
    }
    assert_eq!(seen, 10);
}

// ----- augmentation --------------------------------------------------------------------------

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[test]
fn augment_keeps_shape_dtype_and_is_seeded() {
    for shape in [vec![4, 3, 8, 6], vec![5, 7, 7]] {
        for dtype in [DType::F32, DType::F64] {
            let b = Tensor::rand(shape.clone(), dtype, &mut rng(0));
            let aug = Augment::new().shift(2).flip(0.5).noise(0.1);
            let a1 = aug.apply(&b, &mut rng(1));
            let a2 = aug.apply(&b, &mut rng(1));
            let a3 = aug.apply(&b, &mut rng(2));
            assert_eq!((a1.dims(), a1.dtype()), (b.dims(), dtype));
            assert_eq!(a1.to_vec::<f64>(), a2.to_vec::<f64>());
            assert_ne!(a1.to_vec::<f64>(), a3.to_vec::<f64>());
            assert!(!a1.requires_grad());
        }
    }
    let b = Tensor::rand([2, 3, 3], DType::F32, &mut rng(0));
    assert_eq!(
        Augment::new().apply(&b, &mut rng(0)).to_vec::<f32>(),
        b.to_vec::<f32>()
    );
}

#[test]
fn flip_twice_is_identity() {
    let b = Tensor::rand([6, 2, 5, 7], DType::F32, &mut rng(0));
    let flip = Augment::new().flip(1.0);
    let once = flip.apply(&b, &mut rng(1));
    assert_ne!(once.to_vec::<f32>(), b.to_vec::<f32>());
    // Mirrored along the last axis.
    let (v, o) = (b.to_vec::<f32>(), once.to_vec::<f32>());
    for row in 0..(6 * 2 * 5) {
        for x in 0..7 {
            assert_eq!(o[row * 7 + x], v[row * 7 + 6 - x]);
        }
    }
    let twice = flip.apply(&once, &mut rng(2));
    assert_eq!(twice.to_vec::<f32>(), b.to_vec::<f32>());
}

#[test]
fn flip_probability_is_respected() {
    // One-pixel-wide asymmetric images: count how many came out mirrored.
    let n = 2000;
    let v: Vec<f32> = (0..n).flat_map(|_| [1.0f32, 0.0]).collect();
    let b = Tensor::from_vec(v, [n, 1, 2]);
    let out = Augment::new()
        .flip(0.3)
        .apply(&b, &mut rng(5))
        .to_vec::<f32>();
    let flipped = (0..n).filter(|i| out[2 * i] == 0.0).count() as f64 / n as f64;
    assert!((flipped - 0.3).abs() < 0.04, "{flipped}");
}

#[test]
fn shift_moves_mass_with_zero_padding() {
    // A single bright pixel in the middle of each image moves by at most 2 in each direction.
    let (n, h, w) = (300, 9, 9);
    let mut v = vec![0.0f32; n * h * w];
    for s in 0..n {
        v[s * h * w + 4 * w + 4] = 1.0;
    }
    let b = Tensor::from_vec(v, [n, 1, h, w]);
    let out = Augment::new()
        .shift(2)
        .apply(&b, &mut rng(3))
        .to_vec::<f32>();
    let mut offsets = BTreeSet::new();
    for s in 0..n {
        let img = &out[s * h * w..(s + 1) * h * w];
        assert_eq!(img.iter().sum::<f32>(), 1.0, "mass kept inside the frame");
        let pos = img.iter().position(|&p| p == 1.0).unwrap();
        let (dy, dx) = (pos as i64 / w as i64 - 4, pos as i64 % w as i64 - 4);
        assert!(dy.abs() <= 2 && dx.abs() <= 2);
        offsets.insert((dy, dx));
    }
    assert_eq!(offsets.len(), 25, "every shift in [-2, 2]² occurs");

    // All-ones images lose exactly the rows and columns shifted out, replaced by zeros.
    let ones = Tensor::ones([200, 6, 6], DType::F64);
    let out = Augment::new()
        .shift(3)
        .apply(&ones, &mut rng(4))
        .to_vec::<f64>();
    let mut moved = 0;
    for s in 0..200 {
        let img = &out[s * 36..(s + 1) * 36];
        let sum: f64 = img.iter().sum();
        let rows = (0..6)
            .filter(|r| img[r * 6..r * 6 + 6].iter().any(|&p| p > 0.0))
            .count();
        let cols = (0..6)
            .filter(|c| (0..6).any(|r| img[r * 6 + c] > 0.0))
            .count();
        assert_eq!(sum, (rows * cols) as f64, "zero padding, no wrap-around");
        if sum < 36.0 {
            moved += 1;
        }
    }
    assert!(moved > 150, "{moved}");
}

#[test]
fn noise_has_the_requested_std() {
    let b = Tensor::zeros([100, 1000], DType::F32);
    let out = Augment::new().noise(0.1).apply(&b, &mut rng(9));
    let v = out.to_vec::<f64>();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.002, "{mean}");
    assert!((std - 0.1).abs() < 0.002, "{std}");
}

#[test]
#[should_panic(expected = "shift and flip need images [N, H, W] or [N, C, H, W], got [4, 784]")]
fn geometric_augmentation_needs_images() {
    Augment::new()
        .shift(1)
        .apply(&Tensor::zeros([4, 784], DType::F32), &mut rng(0));
}

// ----- data sets -----------------------------------------------------------------------------

fn histogram(labels: &[usize]) -> Vec<usize> {
    let mut h = vec![0; 10];
    labels.iter().for_each(|&l| h[l] += 1);
    h
}

#[test]
fn mnist_sample_loads() {
    let (train, test) = datasets::mnist(datasets::bundled_data_dir().join("mnist-sample")).unwrap();
    assert_eq!(train.inputs().dims(), &[1000, 1, 28, 28]);
    assert_eq!(test.inputs().dims(), &[1000, 1, 28, 28]);
    assert_eq!(train.inputs().dtype(), DType::F32);
    assert_eq!(
        histogram(train.labels().unwrap()),
        [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    );
    assert_eq!(
        histogram(test.labels().unwrap()),
        [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]
    );
    let mean = train.inputs().mean().item();
    assert!((0.12..0.14).contains(&mean), "{mean}");
}

#[test]
fn full_mnist_loads() {
    let (train, test) = datasets::mnist(datasets::bundled_data_dir().join("mnist")).unwrap();
    assert_eq!(train.inputs().dims(), &[60000, 1, 28, 28]);
    assert_eq!(test.inputs().dims(), &[10000, 1, 28, 28]);
    assert_eq!(
        histogram(train.labels().unwrap()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        histogram(test.labels().unwrap()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn mnist_raw_files_and_errors() {
    use std::io::Read;
    let sample = datasets::bundled_data_dir().join("mnist-sample");
    let dir = tempfile::tempdir().unwrap();
    let gunzip = |name: &str| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(sample.join(format!("{name}.gz"))).unwrap(),
        )
        .read_to_end(&mut out)
        .unwrap();
        out
    };
    // Raw (uncompressed) files, one under the dotted name some mirrors use.
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
    ] {
        std::fs::write(dir.path().join(name), gunzip(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("t10k-labels.idx1-ubyte"),
        gunzip("t10k-labels-idx1-ubyte"),
    )
    .unwrap();
    let (train, test) = datasets::mnist(dir.path()).unwrap();
    assert_eq!((train.len(), test.len()), (1000, 1000));

    // Labels that do not match the images.
    let mut labels = gunzip("t10k-labels-idx1-ubyte");
    labels.truncate(8 + 999);
    labels[7] = 0xE7; // 999 = 0x3E7
    labels[6] = 0x03;
    std::fs::write(dir.path().join("t10k-labels.idx1-ubyte"), labels).unwrap();
    let e = datasets::mnist(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("999 labels but"), "{e}");

    // A missing file.
    std::fs::remove_file(dir.path().join("train-images-idx3-ubyte")).unwrap();
    let e = datasets::mnist(dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no file train-images-idx3-ubyte (looked for train-images-idx3-ubyte.gz and train-images-idx3-ubyte)",
            dir.path().display()
        )
    );

    // A truncated file is the reader's typed error.
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        &gunzip("train-images-idx3-ubyte")[..5000],
    )
    .unwrap();
    let e = datasets::mnist(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Io(_)));
    assert!(
        e.to_string()
            .ends_with("truncated: header says 1000×28×28 (784000 bytes) but 4984 bytes follow"),
        "{e}"
    );
}

#[test]
fn digits_loads_scaled() {
    let ds = datasets::digits(datasets::bundled_data_dir().join("digits/digits.csv.gz")).unwrap();
    assert_eq!(ds.inputs().dims(), &[1797, 64]);
    let v = ds.inputs().to_vec::<f32>();
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    assert_eq!(v.iter().cloned().fold(0.0f32, f32::max), 1.0);
    assert_eq!(
        histogram(ds.labels().unwrap()),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "1,2,3\n").unwrap();
    let e = datasets::digits(&p).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("2 features per line, expected 64 (8×8 pixels)"),
        "{e}"
    );
}
