//! Builds the C fixtures of the patch tests (tests/c/): a static library
//! that the tests link (`#[link(name = "vt_client")]`) and a shared object
//! they load with `dlopen` from `OUT_DIR`. Neither is linked into the
//! library itself: only the search path is set for every target, and only
//! a target that names the library links it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=tests/c");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = "tests/c/vt_client.c";
    cc::Build::new()
        .file(src)
        .warnings(true)
        .cargo_metadata(false)
        .compile("vt_client");
    println!("cargo:rustc-link-search=native={}", out.display());
    let compiler = cc::Build::new().get_compiler();
    let so = out.join("libvt_client_dso.so");
    let status = compiler
        .to_command()
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-DVT_NAME=vt_roundtrip_dso",
            "-DVT_LOOKUP_NAME=vt_lookup_dso",
            "-o",
        ])
        .arg(&so)
        .arg(src)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "building {}", so.display());
}
