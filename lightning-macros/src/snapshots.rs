//! Snapshots of the pretty-printed expansion, reviewed with `cargo insta review` or `INSTA_UPDATE=always`.
