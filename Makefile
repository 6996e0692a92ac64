# Local entry points; `make ci` is exactly what CI runs (.ci/run installs prerequisites first).
.PHONY: ci lint test fmt demo

ci: lint test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# The README's test command.
test:
	cargo test

fmt:
	cargo fmt

# The README's first run: a rolling upgrade of the embedded simulated cluster.
demo:
	cargo run --release -- --sim rolling_upgrade.rhai 0.11.0
