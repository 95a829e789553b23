// SPDX-License-Identifier: GPL-2.0

//! The PCI driver: binds a physical GPU, hands it to its [`Board`](crate::board::Board) and
//! registers it as an mdev parent offering the board's vGPU types. The PCI device's data is the
//! parent, whose data is the [`Gpu`].

use kernel::{
    device::Core,
    pci,
    pci::{
        Class,
        ClassMask, //
    },
    prelude::*, //
};

use crate::{
    board::{
        self,
        BoardKind, //
    },
    vfio::mdev,
    vgpu::{
        self,
        Gpu,
        VgpuDriver, //
    },
};

pub(crate) struct RvgpuPciDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <RvgpuPciDriver as pci::Driver>::IdInfo,
    [
        // QEMU's `bochs-display` and `secondary-vga` (class 0x0380) and its stdvga (class 0x0300)
        // are all 1234:1111. The kernel crate has no vendor constant for QEMU's 0x1234, so the
        // table matches the classes and `board::probe` checks vendor and device.
        (
            pci::DeviceId::from_class(
                Class::DISPLAY_OTHER.as_raw(),
                ClassMask::ClassSubclass.as_raw()
            ),
            BoardKind::Bochs
        ),
        (
            pci::DeviceId::from_class(
                Class::DISPLAY_VGA.as_raw(),
                ClassMask::ClassSubclass.as_raw()
            ),
            BoardKind::Bochs
        ),
    ]
);

impl pci::Driver for RvgpuPciDriver {
    type IdInfo = BoardKind;
    type Data<'bound> = mdev::Parent<VgpuDriver>;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let kind = info.ok_or(ENODEV)?;
            let board = board::probe(*kind, pdev)?;
            // A persona's table if it has one for this VRAM, else the board's own.
            let persona = vgpu::persona().and_then(|p| {
                let table = vgpu::table_for(p, board.vram_size());
                if table.is_none() {
                    dev_warn!(
                        pdev,
                        "persona {}: no table for {} MiB of VRAM in mdev_types/{}.types; the board's own types\n",
                        p,
                        board.vram_size() >> 20,
                        p
                    );
                }
                table
            });
            let Some(table) = persona.or_else(|| vgpu::table_for(board.model(), board.vram_size()))
            else {
                dev_err!(
                    pdev,
                    "{}: no vGPU type table for {} MiB of VRAM (mdev_types/{}.types)\n",
                    board.model(),
                    board.vram_size() >> 20,
                    board.model()
                );
                return Err(ENODEV);
            };
            let (of, persona_name) = match table.persona_mib {
                0 => ("", ""),
                _ => (" of persona ", table.board),
            };
            dev_info!(
                pdev,
                "{}: {} MiB VRAM, {}, {} vGPU types{}{}\n",
                board.model(),
                board.vram_size() >> 20,
                board.identity(),
                table.types.len(),
                of,
                persona_name
            );
            let gpu = Gpu::new(pdev.as_ref(), board, table)?;
            let types = vgpu::type_infos(&gpu)?;
            Ok(mdev::Parent::new(
                pdev.as_ref(),
                &vgpu::MDEV_DRIVER,
                types,
                gpu,
            ))
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // Before the vGPUs go (the mdev parent's removal waits for their users): from now on
        // the users get errors, not the board.
        this.data().set_gone();
        dev_info!(
            pdev,
            "{}: unbinding: its vGPUs' users get ENODEV from now on\n",
            this.data().board().model()
        );
    }
}
