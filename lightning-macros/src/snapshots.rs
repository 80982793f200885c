//! Snapshots of the pretty-printed expansion (`snapshots/`). Review changes with `cargo insta review`, or
//! re-record with `INSTA_UPDATE=always cargo test -p lightning-macros` and read the `git diff`.

use proc_macro2::TokenStream;
use quote::quote;

fn expand(args: TokenStream, item: TokenStream) -> String {
    let tokens = crate::module(args, item);
    let file: syn::File = syn::parse2(tokens).expect("the expansion is valid Rust");
    prettyplease::unparse(&file)
}

#[test]
fn minimal_module() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            impl Minimal {
                fn training_step(&mut self, batch: &Tensor) -> Tensor {
                    batch.sum(Kind::Float)
                }
                fn configure_optimizers(&mut self) -> Optimizer {
                    Optimizer::sgd(&self.vs, 0.1)
                }
            }
        }
    ));
}

#[test]
fn every_kind_of_hook() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            impl Everything {
                fn new() -> Self { todo!() }
                fn training_step(&mut self, batch: &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) -> Result<Tensor, MyError> { todo!() }
                fn validation_step(&mut self, batch: &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) { }
                fn predict_step(&mut self, batch: &(Tensor, Tensor)) -> Vec<i64> { todo!() }
                fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) { todo!() }
                fn configure_sharded_model(&mut self) { }
                fn optimizer_step(&mut self, epoch: usize, batch_idx: usize, optimizer: &mut Optimizer, closure: &mut OptimizerClosure<'_, Self>) -> lightning::Result<()> { todo!() }
                fn on_train_batch_start(&mut self, batch: &(Tensor, Tensor)) -> BatchControl { todo!() }
                fn transfer_batch_to_device(&mut self, batch: (Tensor, Tensor), device: Device) -> (Tensor, Tensor) { batch }
                fn train_dataloader(&self) -> Loader<(Tensor, Tensor)> { todo!() }
                fn on_save_checkpoint(&mut self, checkpoint: &mut Checkpoint) { }
            }
        }
    ));
}

#[test]
fn renamed_crate_and_var_store() {
    insta::assert_snapshot!(expand(
        quote!(crate = my_lightning, var_store = params),
        quote! {
            impl Model {
                fn training_step(&mut self, batch: &Tensor) -> Tensor { todo!() }
                fn configure_optimizers(&mut self) -> Optimizer { todo!() }
            }
        }
    ));
}

#[test]
fn batch_declared() {
    insta::assert_snapshot!(expand(
        quote!(batch = (Tensor, Tensor)),
        quote! {
            impl<T: Backbone> Model<T> where T: Send {
                fn predict_step(&mut self, batch: &(Tensor, Tensor)) -> Tensor { todo!() }
            }
        }
    ));
}

#[test]
fn batch_inferred() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            impl Model {
                fn on_before_batch_transfer(&mut self, batch: MyBatch) -> MyBatch { batch }
                fn training_step(&mut self, batch: &MyBatch) -> Tensor { todo!() }
            }
        }
    ));
}

#[test]
fn errors_keep_the_block_and_stub_the_impl() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            impl Model {
                fn trainig_step(&mut self, batch: &Tensor) -> Tensor { todo!() }
                fn on_fit_start(self) { }
                fn training_epoch_end(&mut self) { }
            }
        }
    ));
}

#[test]
fn example_input_runs_through_forward() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            impl Model {
                fn forward(&self, x: &Tensor) -> Tensor { x.apply(&self.net) }
                fn example_input_array(&self) -> Tensor { Tensor::zeros([2, 4], (Kind::Float, Device::Cpu)) }
                fn training_step(&mut self, batch: &Tensor) -> Tensor { self.forward(batch).sum(Kind::Float) }
            }
        }
    ));
}
