// SPDX-License-Identifier: GPL-2.0

//! rvgpu: a GRID-style vGPU host driver on the VFIO mediated-device framework.
//!
//! The layout follows the architecture:
//! - [`vfio`]: the safe Rust layer over the C VFIO/mdev API (the only `unsafe` code),
//! - [`board`]: the physical GPUs rvgpu can drive, behind the [`board::Board`] trait,
//! - [`vgpu`]: the virtual device model (types, VRAM partitioning, config space, registers),
//! - [`driver`]: the PCI driver glue that binds a physical GPU.

use kernel::{
    driver::Registration,
    pci,
    prelude::*,
    InPlaceModule, //
};

mod board;
mod driver;
mod vfio;
mod vgpu;

/// The PCI driver's name. The mdev core names type directories `<parent driver>-<type>`, so a
/// driver named `nvidia` yields the `nvidia-<id>` directories management tools expect.
const PCI_DRIVER_NAME: &CStr = c"nvidia";

#[pin_data]
struct RvgpuModule {
    // Dropped in declaration order: the PCI driver first (unbinding every GPU removes its
    // parent and instances), then the mdev driver.
    #[pin]
    _pci: Registration<pci::Adapter<driver::RvgpuPciDriver>>,
    _mdev: vfio::mdev::DriverRegistration<vgpu::VgpuDriver>,
}

impl InPlaceModule for RvgpuModule {
    fn init(module: &'static kernel::ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // A persona that names no table in mdev_types/ is a typo: refuse to load.
            vgpu::check_persona()?;
            // The mdev driver first: binding a GPU registers an mdev parent, which needs it.
            let mdev = vgpu::MDEV_DRIVER.register(module)?;
            Ok(try_pin_init!(Self {
                _pci <- Registration::new(PCI_DRIVER_NAME, module),
                _mdev: mdev,
            }))
        })
    }
}

module! {
    type: RvgpuModule,
    name: "rvgpu",
    authors: ["The rvgpu developers"],
    description: "GRID-style vGPU host driver (VFIO mediated devices) for Bochs display adapters",
    license: "GPL v2",
}
