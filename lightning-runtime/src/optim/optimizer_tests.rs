//! The optimizers' updates against PyTorch's, and parameter groups.

use super::*;
use tch::Kind;

/// A parameter `p` (starting at `start`) and `f(p) = sum(p²) / 2`, whose gradient is `p`.
fn param(start: &[f32]) -> Tensor {
    Tensor::from_slice(start).set_requires_grad(true)
}

fn step_on_half_square(opt: &mut Optimizer, p: &Tensor) {
    opt.zero_grad().unwrap();
    (p * p / 2.0).sum(Kind::Float).backward();
    opt.step().unwrap();
}

fn values(p: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} != {b:?}");
}

#[test]
fn sgd_with_momentum_matches_pytorch() {
    let p = param(&[1.0]);
    let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1).momentum(0.9);
    step_on_half_square(&mut opt, &p); // buf = 1, p = 0.9
    close(&values(&p), &[0.9]);
    step_on_half_square(&mut opt, &p); // buf = 0.9 + 0.9 = 1.8, p = 0.72
    close(&values(&p), &[0.72]);
    let p = param(&[1.0]);
    let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1).momentum(0.9).nesterov(true).weight_decay(1.0);
    step_on_half_square(&mut opt, &p); // g = 2, buf = 2, g' = 2 + 1.8 = 3.8, p = 0.62
    close(&values(&p), &[0.62]);
}

#[test]
fn adam_and_adamw_first_steps_match_pytorch() {
    let p = param(&[2.0, -3.0]);
    let mut opt = Optimizer::adam(vec![p.shallow_clone()], 0.1);
    step_on_half_square(&mut opt, &p); // the first step moves each element by lr against its gradient's sign
    close(&values(&p), &[1.9, -2.9]);
    let p = param(&[2.0]);
    let mut opt = Optimizer::adamw(vec![p.shallow_clone()], 0.1).weight_decay(0.5);
    step_on_half_square(&mut opt, &p); // p * (1 - 0.05) = 1.9, then - 0.1
    close(&values(&p), &[1.8]);
    assert_eq!(opt.steps(), 1);
}

/// Adam on `sum(p²) / 2` (gradient `p`), element by element in f64, as PyTorch's documentation states it.
fn adam_reference(start: &[f64], steps: i32, lr: f64, wd: f64, decoupled: bool) -> Vec<f64> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut out = Vec::new();
    for &x in start {
        let (mut p, mut m, mut v) = (x, 0.0, 0.0);
        for t in 1..=steps {
            let mut g = p;
            if decoupled {
                p *= 1.0 - lr * wd;
            } else {
                g += wd * p;
            }
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let (m_hat, v_hat) = (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t)));
            p -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        out.push(p);
    }
    out
}

#[test]
fn fused_and_single_tensor_adam_follow_the_reference_over_many_steps() {
    let start = [2.0, -3.0, 0.5, 1e-3];
    for (decoupled, wd) in [(false, 0.0), (false, 0.1), (true, 0.1)] {
        let expected = adam_reference(&start, 30, 0.05, wd, decoupled);
        for fused in [true, false] {
            let p = param(&start.map(|x| x as f32));
            let unused = param(&[7.0]);
            let params = vec![p.shallow_clone(), unused.shallow_clone()];
            let opt = if decoupled { Optimizer::adamw(params, 0.05) } else { Optimizer::adam(params, 0.05) };
            let mut opt = opt.weight_decay(wd).fused(fused);
            for _ in 0..30 {
                step_on_half_square(&mut opt, &p);
            }
            let got = values(&p);
            let ok = got.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            assert!(ok, "fused {fused}, decoupled {decoupled}, wd {wd}: {got:?} != {expected:?}");
            // A parameter without a gradient is left alone, as PyTorch's optimizers do.
            assert_eq!(values(&unused), [7.0]);
        }
    }
}

#[test]
fn zero_grad_sets_gradients_to_none() {
    let p = param(&[1.0]);
    let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1);
    (&p * 2.0).sum(Kind::Float).backward();
    assert!(p.grad().defined());
    opt.zero_grad().unwrap();
    assert!(!p.grad().defined());
    // The next backward writes the gradient afresh rather than adding to an old one.
    (&p * 3.0).sum(Kind::Float).backward();
    close(&values(&p.grad()), &[3.0]);
}

#[test]
fn clipping_by_norm_and_by_value() {
    let p = param(&[3.0, 4.0]);
    let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 1.0);
    (&p * &p / 2.0).sum(Kind::Float).backward();
    let norm = opt.clip_grad_norm(1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    close(&values(&p.grad()), &[0.6, 0.8]);
    opt.clip_gradients(Some(0.7), Some(GradClipAlgorithm::Value)).unwrap();
    close(&values(&p.grad()), &[0.6, 0.7]);
}

#[test]
fn a_learning_rate_or_clip_value_that_cannot_work_is_an_error_not_nan_weights() {
    let p = param(&[1.0]);
    let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1);
    (&p * 2.0).sum(Kind::Float).backward();
    let message = opt.clip_gradients(Some(f64::NAN), Some(GradClipAlgorithm::Value)).unwrap_err().to_string();
    assert!(message.contains("gradient clipping value NaN"), "{message}");
    opt.set_lr(f64::NAN);
    assert!(opt.step().unwrap_err().to_string().contains("learning rate is NaN"));
    assert_eq!((values(&p), opt.steps()), (vec![1.0], 0), "nothing moved");
    assert!(opt.check().unwrap_err().contains("learning rate = NaN"));
}

// PyTorch 2.11: AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0, "lr": 0.05}], lr=0.1,
// weight_decay=0.1), three steps on (w·w + b·b) / 2 from w = [1, -2], b = [0.5].
#[test]
fn parameter_groups_match_pytorchs() {
    for fused in [true, false] {
        let (w, b) = (param(&[1.0, -2.0]), param(&[0.5]));
        let mut opt = Optimizer::adamw(vec![w.shallow_clone()], 0.1)
            .weight_decay(0.1)
            .fused(fused)
            .param_group(super::ParamGroup::new(vec![b.shallow_clone()]).weight_decay(0.0).lr(0.05));
        for _ in 0..3 {
            opt.zero_grad().unwrap();
            ((&w * &w).sum(Kind::Float) / 2.0 + (&b * &b).sum(Kind::Float) / 2.0).backward();
            opt.step().unwrap();
        }
        close(&values(&w), &[0.675_101_280_212_402_3, -1.644_368_648_529_052_7]);
        close(&values(&b), &[0.350_793_153_047_561_65]);
        assert_eq!(opt.groups(), vec![(0..1, 0.1, 0.1), (1..2, 0.05, 0.0)], "fused {fused}");
    }
    // SGD([{"params": [w]}, {"params": [b], "momentum": 0.9}], lr=0.1): only the second group has momentum.
    let (w, b) = (param(&[1.0]), param(&[1.0]));
    let mut opt = Optimizer::sgd(vec![w.shallow_clone()], 0.1)
        .param_group(super::ParamGroup::new(vec![b.shallow_clone()]).momentum(0.9));
    for _ in 0..3 {
        step_on_half_square_of(&mut opt, &[&w, &b]);
    }
    close(&values(&w), &[0.729]);
    close(&values(&b), &[0.486]);
}

fn step_on_half_square_of(opt: &mut Optimizer, ps: &[&Tensor]) {
    opt.zero_grad().unwrap();
    ps.iter().map(|p| (*p * *p).sum(Kind::Float) / 2.0).fold(Tensor::from(0.0f32), |a, b| a + b).backward();
    opt.step().unwrap();
}

#[test]
fn parameter_groups_survive_export_and_import_and_a_group_setting_that_cannot_work_is_named() {
    let (w, b) = (param(&[1.0]), param(&[2.0]));
    let make = |w: &Tensor, b: &Tensor| {
        Optimizer::adamw(vec![w.shallow_clone()], 0.1)
            .param_group(super::ParamGroup::new(vec![b.shallow_clone()]).weight_decay(0.0))
    };
    let mut opt = make(&w, &b);
    step_on_half_square_of(&mut opt, &[&w, &b]);
    let (state, tensors) = opt.export(0);
    let mut fresh = make(&w, &b).weight_decay(0.5);
    fresh.import(0, &state, |name| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone())).unwrap();
    assert_eq!(fresh.groups(), opt.groups());
    // Another layout of groups is refused, naming both.
    let mut ungrouped = Optimizer::adamw(vec![w.shallow_clone(), b.shallow_clone()], 0.1);
    let problem =
        ungrouped.import(0, &state, |name| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()));
    assert!(problem.unwrap_err().contains("parameter groups"));
    let bad = Optimizer::sgd(vec![w.shallow_clone()], 0.1)
        .param_group(super::ParamGroup::new(vec![b.shallow_clone()]).momentum(-1.0));
    assert_eq!(bad.check().unwrap_err(), "parameter group 1: momentum = -1: it must be a finite number, 0 or more");
}

#[test]
fn under_a_gradient_scaler_fused_adam_skips_on_the_device_as_the_single_tensor_update_does_on_the_host() {
    let run = |fused: bool| {
        let p = param(&[1.0, -2.0, 0.5]);
        let mut opt = Optimizer::adam(vec![p.shallow_clone()], 0.1).fused(fused);
        opt.scaler = Some(crate::precision::GradScaler::new(tch::Device::Cpu).unwrap().shared());
        // Gradients as a scaled loss's backward leaves them: the scale (2^16, then 2^15 after the skip) times
        // the true ones; the second step's hold an inf.
        for (step, scale) in [(0, 65536.0), (1, 65536.0), (2, 32768.0)] {
            opt.zero_grad().unwrap();
            let true_grad = Tensor::from_slice(&[0.5f32, -1.0, 2.0]) * (step + 1) as f64;
            let grad = if step == 1 { true_grad.fill(f64::INFINITY) } else { true_grad * scale };
            crate::kernels::set_grad(&p, &grad).unwrap();
            opt.step().unwrap();
        }
        let scaler = opt.scaler.as_ref().unwrap().lock().unwrap().state().unwrap();
        (values(&p), opt.steps(), opt.step_calls(), scaler, matches!(opt.fusion, Fusion::On(_)))
    };
    let (fused_values, fused_steps, fused_calls, fused_scaler, was_fused) = run(true);
    let (single_values, single_steps, single_calls, single_scaler, single_fused) = run(false);
    assert!(was_fused && !single_fused);
    close(&fused_values, &single_values);
    assert_eq!((fused_steps, fused_calls), (2, 3), "the skipped step is not counted");
    assert_eq!((single_steps, single_calls), (2, 3));
    assert_eq!(fused_scaler, single_scaler);
    assert_eq!(fused_scaler.scale, 32768.0);
    // And the count a checkpoint keeps is the device's.
    let p = param(&[1.0]);
    let mut opt = Optimizer::adam(vec![p.shallow_clone()], 0.1);
    opt.scaler = Some(crate::precision::GradScaler::new(tch::Device::Cpu).unwrap().shared());
    crate::kernels::set_grad(&p, &Tensor::from_slice(&[f32::NAN])).unwrap();
    opt.step().unwrap();
    assert_eq!(opt.steps(), 0);
    assert_eq!(serde_json::to_value(opt.export(0).0).unwrap()["steps"], 0);
}
