use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(
        ["grpc_service.proto", "health.proto", "model_config.proto"],
        ["proto"],
    )?;
    // The descriptor set lets the config parser and the JSON form walk
    // ModelConfig by reflection instead of hand-written code per field.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        // Tensor payloads stay as `Bytes` so they are sliced, not copied.
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    // The torch feature links libtorch from LIBTORCH: record where, so the binaries find it
    // without LD_LIBRARY_PATH.
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some()
        && let Some(libtorch) = std::env::var_os("LIBTORCH")
    {
        let lib = PathBuf::from(libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    Ok(())
}
