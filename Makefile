# The two quick-start commands and their parts. Each target first sets up whatever is missing.
.PHONY: setup example test ci

setup:
	@scripts/setup-torch.sh

example: setup
	cargo run --example digits

test: setup
	cargo test --workspace --all-targets
	cargo test --workspace --doc

ci: test
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
