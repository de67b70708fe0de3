//! Rebuilds the example and the tests when a migration folder is added, so the migrations
//! they embed (`diesel_migrations::embed_migrations!`) are always the ones in `migrations/`.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
