// SPDX-License-Identifier: GPL-2.0
//! The stream helpers against streams built from parts.

use super::*;
use crate::rvgpu::{DISPI_INDEX_XRES, MIG_PARAMS_MAX};

/// 2 MiB + 12 KiB: two full VRAM records and a short one.
const FB: u32 = (2 << 20) + 0x3000;
const TYPE: u32 = 9106;
const EXPECT: Expect = Expect { type_id: TYPE, fb_size: FB };

fn fb() -> Vec<u8> {
    (0..FB).map(|i| (i ^ i >> 9) as u8).collect()
}

fn state() -> MigState {
    let mut s = MigState {
        ring_base: 0x1_2340_0000,
        ring_size: 0x8000,
        ring_head: 0x40,
        ring_tail: 0x80,
        ..Default::default()
    };
    s.config[..4].copy_from_slice(&[0x34, 0x12, 0x11, 0x11]);
    s.dispi[DISPI_INDEX_XRES as usize] = 1024;
    s.params[..20].copy_from_slice(b"frame_rate_limiter=0");
    s.params_len = 20;
    s
}

fn good() -> Vec<u8> {
    Builder::new(&MigHeader::new(TYPE, FB)).vram(0, &fb()).state(&state()).end().finish()
}

#[test]
fn a_built_stream_parses_back_and_is_valid() {
    let bytes = good();
    assert_eq!(bytes.len(), HEADER_SIZE + 5 * RECORD_SIZE + FB as usize + STATE_SIZE);
    let p = parse(&bytes);
    assert_eq!(p.header, Some(MigHeader::new(TYPE, FB)));
    let heads: Vec<(u32, u32, u64)> = p.records.iter().map(|r| (r.head.kind, r.head.len, r.head.offset)).collect();
    assert_eq!(
        heads,
        [
            (MIG_REC_VRAM, MIG_VRAM_MAX, 0),
            (MIG_REC_VRAM, MIG_VRAM_MAX, MIG_VRAM_MAX as u64),
            (MIG_REC_VRAM, 0x3000, 2 * MIG_VRAM_MAX as u64),
            (MIG_REC_STATE, STATE_SIZE as u32, 0),
            (MIG_REC_END, 0, 0),
        ]
    );
    assert!(p.ended() && p.rest.is_empty());
    assert_eq!(p.records[1].at, HEADER_SIZE + RECORD_SIZE + MIG_VRAM_MAX as usize);
    assert_eq!(p.records[2].data, &fb()[2 * MIG_VRAM_MAX as usize..]);
    assert_eq!(p.state(), Some(state()));
    assert_eq!(p.state().map(|s| s.params_text().to_vec()), Some(b"frame_rate_limiter=0".to_vec()));
    assert_eq!(validate(&bytes, &EXPECT), Vec::<String>::new());
    assert_eq!(check_vram_cover(&p.records, FB), Ok(()));
    assert_eq!(MIG_PARAMS_MAX as usize, state().params.len());
}

#[test]
fn partial_streams_parse_as_far_as_they_go() {
    let bytes = good();
    let p = parse(&bytes[..40]);
    assert_eq!((p.header, p.records.len(), p.rest.len()), (None, 0, 40));
    // The PRE_COPY part: header and framebuffer, no STATE and no END yet.
    let pre = HEADER_SIZE + 3 * RECORD_SIZE + FB as usize;
    let p = parse(&bytes[..pre]);
    assert!(p.header.is_some() && !p.ended() && p.rest.is_empty());
    assert_eq!(p.records.len(), 3);
    assert_eq!(check_vram_cover(&p.records, FB), Ok(()));
    // Cut inside the second record.
    let p = parse(&bytes[..HEADER_SIZE + RECORD_SIZE + MIG_VRAM_MAX as usize + 100]);
    assert_eq!((p.records.len(), p.rest.len()), (1, 100));
    assert!(validate(&bytes[..pre + 7], &EXPECT).iter().any(|e| e.contains("cut short")));
}

#[test]
fn every_corruption_is_caught() {
    let bytes = good();
    let want: [(Corruption, &str); 17] = [
        (Corruption::BadMagic, "header magic"),
        (Corruption::BadVersion, "header version"),
        (Corruption::BadHeaderSize, "header header_size"),
        (Corruption::OtherTypeId, "header type_id"),
        (Corruption::OtherFbSize, "header fb_size"),
        (Corruption::BadStateSize, "header state_size"),
        (Corruption::HeaderFlags, "header flags"),
        (Corruption::HeaderReserved, "header reserved"),
        (Corruption::HeaderCut, "header is incomplete"),
        (Corruption::NoEnd, "no END record"),
        (Corruption::NoState, "no STATE record"),
        (Corruption::VramBeyondFb, "beyond fb_size"),
        (Corruption::VramTooLong, "more than MIG_VRAM_MAX"),
        (Corruption::UnknownKind, "unknown record kind 127"),
        (Corruption::StateBadLen, "STATE record len 1360"),
        (Corruption::DataAfterEnd, "16 bytes after the END record"),
        (Corruption::BadConfigIds, "config space IDs 10de:2204"),
    ];
    assert_eq!(want.map(|(c, _)| c), Corruption::ALL);
    for (c, needle) in want {
        let bad = c.apply(&bytes).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        let problems = validate(&bad, &EXPECT);
        assert!(problems.iter().any(|p| p.contains(needle)), "{c:?} ({}): {problems:?}", c.describe());
        // Each spoils one thing: the stream is otherwise valid.
        assert_eq!(problems.len(), 1, "{c:?}: {problems:?}");
    }
    assert_eq!(Corruption::NoEnd.apply(&bytes).map(|b| b.len()), Ok(bytes.len() - RECORD_SIZE));
    assert_eq!(Corruption::NoState.apply(&bytes).map(|b| b.len()), Ok(bytes.len() - RECORD_SIZE - STATE_SIZE));
    let stages: Vec<Corruption> = Corruption::ALL.into_iter().filter(|c| c.stage() == Stage::Stop).collect();
    assert_eq!(stages, [Corruption::HeaderCut, Corruption::NoEnd, Corruption::NoState, Corruption::BadConfigIds]);
}

#[test]
fn corrupting_needs_a_good_stream() {
    let bytes = good();
    assert!(Corruption::BadMagic.apply(&bytes[..10]).is_err());
    assert!(Corruption::NoEnd.apply(&bytes[..bytes.len() - RECORD_SIZE]).is_err());
    let no_state = Builder::new(&MigHeader::new(TYPE, FB)).end().finish();
    assert!(Corruption::BadConfigIds.apply(&no_state).is_err());
}

#[test]
fn vram_cover_finds_gaps_and_disorder() {
    let h = MigHeader::new(TYPE, 0x3000);
    let check = |b: Builder| {
        let bytes = b.end().finish();
        check_vram_cover(&parse(&bytes).records, 0x3000)
    };
    let page = [0u8; 0x1000];
    assert_eq!(check(Builder::new(&h).vram(0, &[0; 0x3000])), Ok(()));
    let gap = check(Builder::new(&h).vram(0, &page).vram(0x2000, &page)).expect_err("gap");
    assert!(gap.contains("0x1000..0x2000"), "{gap}");
    let order = check(Builder::new(&h).vram(0x1000, &page).vram(0, &page)).expect_err("order");
    assert!(order.contains("leave 0x0..0x1000"), "{order}");
    let back = check(Builder::new(&h).vram(0, &[0; 0x2000]).vram(0, &page)).expect_err("not ascending");
    assert!(back.contains("not above"), "{back}");
    let short = check(Builder::new(&h).vram(0, &page)).expect_err("short");
    assert!(short.contains("cover 0x1000 bytes"), "{short}");
}

#[test]
fn type_ids_from_type_names() {
    assert_eq!(type_id_of("nvidia-9106"), Some(9106));
    assert_eq!(type_id_of("nvidia-"), None);
    assert_eq!(type_id_of("nvidia-12a"), None);
    assert_eq!(type_id_of("mbochs-small"), None);
    assert_eq!(kind_name(MIG_REC_END), "END");
    assert_eq!(kind_name(9), "kind 9");
}
