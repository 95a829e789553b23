// SPDX-License-Identifier: GPL-2.0

//! The guest-visible interface of a vGPU: the constants and command structures of
//! `uapi/rvgpu.h`, generated from the header at build time by the module's bindgen step
//! (`Kbuild`), so the header is their single source. The register map is decoded in
//! [`super::bar2`], the commands in `engine/cmd.rs`.

#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    clippy::all,
    missing_docs,
    unreachable_pub
)]

use kernel::{
    ffi,
    prelude::{
        FromBytes,
        IntoBytes, //
    }, //
};

#[allow(unused_imports)]
use zerocopy_derive::Immutable;

include!("../generated/uapi.rs");
