//! Trains a small regression with tch and prints its loss falling.
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn main() -> Result<(), tch::TchError> {
    tch::manual_seed(0);
    let device = Device::cuda_if_available();
    let x = Tensor::f_rand([512, 8], (Kind::Float, device))?;
    let w = Tensor::f_randn([8, 1], (Kind::Float, device))?;
    let y = x.f_matmul(&w)?.f_sin()?;

    let vs = nn::VarStore::new(device);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "l1", 8, 32, Default::default()))
        .add_fn(|t| t.relu())
        .add(nn::linear(vs.root() / "l2", 32, 1, Default::default()));
    let mut opt = nn::Adam::default().build(&vs, 1e-2)?;
    for epoch in 1..=200 {
        let loss = net.forward(&x).f_mse_loss(&y, tch::Reduction::Mean)?;
        opt.backward_step(&loss);
        if epoch % 40 == 0 {
            println!("epoch {epoch:3}  loss {:.5}", loss.f_double_value(&[])?);
        }
    }
    println!("device {device:?}, cuda available: {}", tch::Cuda::is_available());
    Ok(())
}
