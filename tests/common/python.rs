//! The Python that reads TensorBoard's files back in the logger tests: TensorBoard's own reader is the judge of
//! what the event files hold.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of the managed environment (where `make setup` installs TensorBoard), or
/// `$LIGHTNING_TEST_PYTHON`.
pub fn tensorboard_python() -> PathBuf {
    let python = std::env::var_os("LIGHTNING_TEST_PYTHON").map(PathBuf::from).or_else(|| {
        // `.libtorch` links to `<env>/lib/python3.X/site-packages/torch`.
        let from_link = Path::new(env!("CARGO_MANIFEST_DIR")).join(".libtorch").canonicalize().ok();
        let env = from_link.and_then(|torch| torch.ancestors().nth(4).map(Path::to_path_buf));
        [lightning_build::managed_env_dir(), env]
            .into_iter()
            .flatten()
            .map(|env| env.join("bin").join("python"))
            .find(|python| python.is_file())
    });
    let fix = "run `make setup` (it installs TensorBoard, pinned in scripts/python-requirements.txt, into the \
               managed Python environment), or set LIGHTNING_TEST_PYTHON to a Python that has `tensorboard`";
    let Some(python) = python else {
        panic!("no Python of the managed environment to read the TensorBoard files back with: {fix}");
    };
    let has_tensorboard = Command::new(&python).args(["-c", "import tensorboard"]).output();
    if !has_tensorboard.is_ok_and(|out| out.status.success()) {
        panic!("{} cannot import tensorboard: {fix}", python.display());
    }
    python
}
