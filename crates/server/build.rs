//! Rebuilds the server when a migration file is added or changed:
//! refinery's `embed_migrations!` (`storage/migrations.rs`) reads the
//! folders at compile time, and Cargo would otherwise notice only edits to
//! the Rust sources, not a new `V<n>__….sql` beside the others.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
