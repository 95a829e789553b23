// SPDX-License-Identifier: GPL-2.0

//! Bindings for `<linux/vfio.h>` and `<linux/mdev.h>`, generated at build time by the module's
//! private bindgen step (see `Kbuild`) from `bindings_helper.h`.
//!
//! Types the generated code mentions but does not define (`device`, `file`, `page`, ...) are the
//! kernel crate's own binding types, brought in by the glob import below.

#![allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

#[allow(unused_imports)]
pub(crate) use kernel::bindings::*;
use kernel::ffi;
#[allow(unused_imports)]
use kernel::prelude::{
    FromBytes,
    IntoBytes, //
};
#[allow(unused_imports)]
use pin_init::{
    MaybeZeroable,
    Zeroable, //
};

include!("../generated/vfio_bindings.rs");
