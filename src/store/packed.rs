//! An entry's strings in one allocation, and a bounded free list of those
//! allocations.
//!
//! Every lock hold and data item keeps its name, owner and value in one
//! [`Packed`] buffer: one heap block per entry instead of three saves two
//! pointers and two allocator headers, a third of the memory of a small entry.
//!
//! A lock taken and released is the hot path, and each one used to cost a
//! `malloc` and a `free`. The [`Recycler`] keeps buffers that entries gave
//! back and hands them to the next entries of the same size class instead.
//! Buffers are sized to glibc's chunk steps ([`room`]), so any two strings
//! whose chunks would be the same size share a class, at no memory cost.
//! The recycler is bounded: [`CLASSES`] classes of at most [`KEPT`] buffers
//! each, so it never holds more than 32 × (24 + 40 + ... + 248) = 65,280
//! bytes; larger buffers and buffers past the bound go back to the
//! allocator. Compaction (`ForcedGC`) frees them all.
//!
//! A recycled buffer is overwritten from the start; its tail (at most 23
//! bytes past the strings) may still hold bytes of a previous entry, and
//! nothing ever reads it: every accessor slices by the stored lengths.

use crate::protocol::request::NameTag;

/// Size classes kept: buffers of [`room`] 24, 40, ..., 248 bytes.
const CLASSES: usize = 15;

/// Most buffers kept per size class.
const KEPT: usize = 32;

/// The length a buffer for `n` bytes of strings is given. glibc's `malloc`
/// hands out chunks in steps of 16 bytes with an 8-byte header (at least
/// 32), so asking for `n` bytes gets the same chunk as asking for this many:
/// the room past `n` (below 16 bytes, or 24 in all for the smallest chunk)
/// is free, and it lets buffers of one
/// size class serve each other's strings.
fn room(n: usize) -> usize {
    (n + 8).next_multiple_of(16).max(32) - 8
}

/// The size class of a buffer of `room` bytes, if one is kept.
fn class(room: usize) -> Option<usize> {
    let class = room.checked_sub(24)? / 16;
    (class < CLASSES).then_some(class)
}

/// Name, owner and (for data items) value, back to back in one buffer,
/// followed by `spare` unused bytes.
#[derive(Debug)]
pub(super) struct Packed {
    /// Invariant: the first `len()` bytes are the three strings back to
    /// back, each copied from a `&str`, so every piece is UTF-8, followed
    /// (when `named`) by the 8 bytes of the owner's [`NameTag`].
    text: Box<[u8]>,
    /// Lengths of the name and the owner. [`Recycler::pack`] refuses
    /// strings that would not fit (the parser's limits, 4096 and 1024
    /// bytes, keep every request far below), so no length is ever cut.
    name_len: u16,
    owner_len: u16,
    /// Bytes of `text` past the strings (at most 23); the struct stays 24
    /// bytes, as with the two lengths alone.
    spare: u8,
    /// The owner was authenticated: its Name's tag follows the value. An
    /// anonymous entry has none and costs nothing more.
    named: bool,
}

/// Bytes a [`NameTag`] takes in an entry's buffer.
const TAG: usize = 8;

impl Packed {
    pub(super) fn name(&self) -> &str {
        self.piece(0, self.name_len as usize)
    }

    pub(super) fn owner(&self) -> &str {
        let start = self.name_len as usize;
        self.piece(start, start + self.owner_len as usize)
    }

    pub(super) fn value(&self) -> &str {
        self.piece(
            self.name_len as usize + self.owner_len as usize,
            self.len() - self.tag_len(),
        )
    }

    /// The Name the owner was authenticated as, if it was.
    pub(super) fn owner_name(&self) -> Option<NameTag> {
        if !self.named {
            return None;
        }
        let end = self.len();
        let bytes: [u8; TAG] = self.text[end - TAG..end].try_into().ok()?;
        Some(NameTag(u64::from_le_bytes(bytes)))
    }

    /// Whether the entry belongs to `id` authenticated as `name` (`None`:
    /// anonymous): PROTOCOL.md's ownership, by exact ID and the same Name.
    pub(super) fn is_owned_by(&self, id: &str, name: Option<NameTag>) -> bool {
        self.owner() == id && self.owner_name() == name
    }

    fn tag_len(&self) -> usize {
        if self.named { TAG } else { 0 }
    }

    /// Bytes of strings held (what the memory guard charges).
    pub(super) fn len(&self) -> usize {
        self.text.len() - self.spare as usize
    }

    fn piece(&self, start: usize, end: usize) -> &str {
        let bytes = &self.text[start..end];
        // SAFETY: `start` and `end` are boundaries between the strings
        // copied in by `Recycler::pack` (see the invariant on `text`), so
        // `bytes` is one of those strings, which are UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

/// Buffers given back by entries, by size class, for the next entries.
#[derive(Debug, Default)]
pub(super) struct Recycler {
    classes: [Vec<Box<[u8]>>; CLASSES],
}

impl Recycler {
    /// Most bytes of buffers the recycler ever keeps.
    #[cfg(test)]
    const MAX_BYTES: usize = KEPT * (CLASSES * 24 + 16 * CLASSES * (CLASSES - 1) / 2);

    /// Packs `name`, `owner` and `value` into a recycled buffer of their
    /// size class, or a new one; `None` (and nothing allocated) if the name
    /// or the owner is longer than a `u16` can say.
    ///
    /// An owner authenticated as a Name (`owner_name`) has its tag kept
    /// after the value.
    pub(super) fn pack(
        &mut self,
        name: &str,
        owner: &str,
        owner_name: Option<NameTag>,
        value: &str,
    ) -> Option<Packed> {
        let name_len = u16::try_from(name.len()).ok()?;
        let owner_len = u16::try_from(owner.len()).ok()?;
        let strings = name
            .len()
            .checked_add(owner.len())?
            .checked_add(value.len())?;
        let len = strings + if owner_name.is_some() { TAG } else { 0 };
        let room = room(len);
        let recycled = class(room).and_then(|class| self.classes[class].pop());
        let text = match recycled {
            Some(mut text) => {
                let (name_part, rest) = text.split_at_mut(name.len());
                let (owner_part, rest) = rest.split_at_mut(owner.len());
                name_part.copy_from_slice(name.as_bytes());
                owner_part.copy_from_slice(owner.as_bytes());
                // Holds have no value: no call to `memcpy` for nothing.
                if !value.is_empty() {
                    rest[..value.len()].copy_from_slice(value.as_bytes());
                }
                text
            }
            None => {
                let mut text = Vec::with_capacity(room);
                text.extend_from_slice(name.as_bytes());
                text.extend_from_slice(owner.as_bytes());
                text.extend_from_slice(value.as_bytes());
                text.resize(room, 0);
                text.into_boxed_slice()
            }
        };
        let mut text = text;
        if let Some(tag) = owner_name {
            text[strings..len].copy_from_slice(&tag.0.to_le_bytes());
        }
        // `room` exceeds `len` by less than 24 bytes (see `room`).
        let spare =
            u8::try_from(room - len).unwrap_or_else(|_| unreachable!("room is len + 0..24"));
        Some(Packed {
            text,
            name_len,
            owner_len,
            spare,
            named: owner_name.is_some(),
        })
    }

    /// Takes back the buffer of an entry that is gone; it is freed if its
    /// class is not kept or already full.
    pub(super) fn recycle(&mut self, packed: Packed) {
        if let Some(class) = class(packed.text.len()) {
            let kept = &mut self.classes[class];
            if kept.len() < KEPT {
                kept.push(packed.text);
            }
        }
    }

    /// Frees every buffer kept (on compaction).
    pub(super) fn clear(&mut self) {
        *self = Recycler::default();
    }

    /// Bytes of buffers kept now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.classes.iter().flatten().map(|text| text.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_matches_glibc_chunks_and_classes_cover_up_to_248() {
        assert_eq!(room(1), 24);
        assert_eq!(room(24), 24);
        assert_eq!(room(25), 40);
        assert_eq!(room(40), 40);
        assert_eq!(room(41), 56);
        for n in 1..5000 {
            assert!(room(n) >= n && room(n) - n <= 23, "{n}");
            assert!(n <= 24 || room(n) - n < 16, "{n}");
            assert_eq!((room(n) + 8) % 16, 0, "{n}");
        }
        assert_eq!(class(24), Some(0));
        assert_eq!(class(248), Some(CLASSES - 1));
        assert_eq!(class(264), None);
    }

    #[test]
    fn strings_read_back_exactly() {
        let mut recycler = Recycler::default();
        for (name, owner, value) in [
            ("n", "o", ""),
            ("name", "owner", "value"),
            ("ünï", "çødé", "välüé"),
            (
                &*"n".repeat(4096),
                &*"o".repeat(1024),
                &*"v".repeat(100_000),
            ),
        ] {
            let packed = recycler.pack(name, owner, None, value).unwrap();
            assert_eq!(
                (packed.name(), packed.owner(), packed.value()),
                (name, owner, value)
            );
            assert_eq!(packed.len(), name.len() + owner.len() + value.len());
            assert_eq!(std::mem::size_of::<Packed>(), 24);
            recycler.recycle(packed);
        }
    }

    #[test]
    fn recycled_buffers_never_show_a_previous_entrys_bytes() {
        let mut recycler = Recycler::default();
        let old = recycler
            .pack("lock", "the-previous-owner", None, "its-secret-value")
            .unwrap();
        let buffer = old.text.as_ptr();
        recycler.recycle(old);
        // 3 + 2 + 29 bytes: the same class (room 40) as the 38 bytes above.
        let new = recycler
            .pack("abc", "me", None, "a-shorter-value-in-that-class")
            .unwrap();
        assert_eq!(new.text.as_ptr(), buffer, "the buffer was reused");
        assert_eq!(
            (new.name(), new.owner(), new.value()),
            ("abc", "me", "a-shorter-value-in-that-class")
        );
        recycler.recycle(new);
        // A hold (no value) of 29 bytes, in that class again.
        let hold = recycler
            .pack("the-lock-name", "another-owner-id", None, "")
            .unwrap();
        assert_eq!(hold.text.as_ptr(), buffer, "the buffer was reused");
        assert_eq!(
            (hold.name(), hold.owner(), hold.value()),
            ("the-lock-name", "another-owner-id", "")
        );
        assert_eq!(hold.len(), 29);
    }

    #[test]
    fn strings_too_long_for_their_length_field_are_refused_not_cut() {
        let mut recycler = Recycler::default();
        // A multi-byte character straddling the u16 boundary: cutting the
        // length would split it and break the UTF-8 invariant.
        let long = "é".repeat(usize::from(u16::MAX) / 2 + 1);
        assert!(long.len() > usize::from(u16::MAX));
        assert!(recycler.pack(&long, "o", None, "").is_none());
        assert!(recycler.pack("n", &long, None, "").is_none());
        let fits = "n".repeat(usize::from(u16::MAX));
        let packed = recycler.pack(&fits, &fits, None, &long).unwrap();
        assert_eq!(
            (packed.name(), packed.owner(), packed.value()),
            (&*fits, &*fits, &*long)
        );
    }

    #[test]
    fn an_authenticated_owner_keeps_its_name_tag_after_the_value() {
        let mut recycler = Recycler::default();
        let tag = NameTag(0x0123_4567_89ab_cdef);
        let named = recycler.pack("lock", "w1", Some(tag), "value").unwrap();
        assert_eq!(
            (named.name(), named.owner(), named.value()),
            ("lock", "w1", "value")
        );
        assert_eq!(named.owner_name(), Some(tag));
        assert_eq!(named.len(), 4 + 2 + 5 + TAG);
        assert!(named.is_owned_by("w1", Some(tag)));
        assert!(
            !named.is_owned_by("w1", None),
            "an anonymous request is not its owner"
        );
        assert!(!named.is_owned_by("w1", Some(NameTag(1))));
        recycler.recycle(named);
        // The reused buffer shows no tag to an anonymous entry.
        let anonymous = recycler.pack("lock", "w1", None, "value").unwrap();
        assert_eq!(anonymous.owner_name(), None);
        assert_eq!(anonymous.len(), 11);
        assert!(anonymous.is_owned_by("w1", None));
        assert!(!anonymous.is_owned_by("w1", Some(tag)));
        assert_eq!(std::mem::size_of::<Packed>(), 24);
    }

    #[test]
    fn bounded_per_class_and_in_all() {
        let mut recycler = Recycler::default();
        for n in [1, 30, 100, 248, 249, 5000] {
            let buffers: Vec<Packed> = (0..3 * KEPT)
                .map(|_| recycler.pack(&"n".repeat(n), "", None, "").unwrap())
                .collect();
            buffers.into_iter().for_each(|p| recycler.recycle(p));
        }
        let kept: Vec<usize> = recycler.classes.iter().map(Vec::len).collect();
        assert!(kept.iter().all(|&k| k <= KEPT), "{kept:?}");
        assert_eq!(kept.iter().sum::<usize>(), 4 * KEPT, "{kept:?}");
        for size in (24..=248).step_by(16) {
            let buffers: Vec<Packed> = (0..2 * KEPT)
                .map(|_| recycler.pack(&"n".repeat(size), "", None, "").unwrap())
                .collect();
            buffers.into_iter().for_each(|p| recycler.recycle(p));
        }
        assert_eq!(recycler.bytes(), Recycler::MAX_BYTES);
        recycler.clear();
        assert_eq!(recycler.bytes(), 0);
    }
}
