//! Compiles `proto/` with protox (pure Rust), so building needs no system `protoc`.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "proto/baton/v1/decision.proto",
            "proto/baton/v1/governance.proto",
            "proto/baton/v1/admin.proto",
            "proto/baton/v1/audit.proto",
        ],
        ["proto"],
    )?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection.
    std::fs::write(out_dir.join("baton_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
