// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts: how a VFIO driver signals interrupts to user space.
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h).

use core::ptr::NonNull;
use kernel::prelude::*;

use super::bindings;

/// A reference to an eventfd context, taken from a user file descriptor.
///
/// # Invariants
///
/// `ctx` is a valid eventfd context we hold a reference on.
pub(crate) struct EventFd {
    ctx: NonNull<bindings::eventfd_ctx>,
}

// SAFETY: An eventfd context is reference counted and may be signalled and put from any thread.
unsafe impl Send for EventFd {}
// SAFETY: `signal` is safe to call concurrently (the context has its own lock).
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference on the eventfd behind file descriptor `fd` of the calling process.
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget()` accepts any integer and returns a context or an error.
        let ctx = unsafe { bindings::eventfd_ctx_fdget(fd) };
        let ctx = kernel::error::from_err_ptr(ctx)?;
        // INVARIANT: A non-error result is a context with a reference for us.
        Ok(Self {
            ctx: NonNull::new(ctx).ok_or(EINVAL)?,
        })
    }

    /// Signals the eventfd (adds one to its counter). Safe from any context, never sleeps.
    pub(crate) fn signal(&self) {
        // SAFETY: By the type invariant `ctx` is valid.
        unsafe { bindings::rvgpu_eventfd_signal(self.ctx.as_ptr()) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference on `ctx`.
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}
