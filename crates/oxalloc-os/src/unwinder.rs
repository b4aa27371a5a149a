//! The x86-64 unwinder of sampled heap profiles: `.eh_frame` call frame information (CFI),
//! interpreted once per return address and remembered in a fixed table of unwind rules.
//!
//! libgcc's `_Unwind_Backtrace` finds and runs each frame's CFI program on every call (about
//! 15,700 instructions per stack in `larson`, about 1,000 a frame). A frame's rule at one
//! address never changes while its code stays mapped, so this unwinder keeps, per address, the
//! three facts a stack walk needs on x86-64: where the canonical frame address (CFA) is (rsp or
//! rbp plus an offset), where the return address is saved, and where rbp is saved (if it is).
//! A frame whose rule is in the table costs a few dozen instructions. A miss finds the frame's
//! FDE with libgcc's `_Unwind_Find_FDE` (the lookup `_Unwind_Backtrace` makes: glibc's
//! `_dl_find_object`, no lock, no allocation) and runs its CIE's and FDE's programs here, on the
//! stack, without allocating.
//!
//! The table is 4096 slots of two atomics, written by any thread without a lock: a slot holds
//! `key ^ value` and `value`, and a reader takes it only if the two words give back its key
//! (Hyatt's lockless hashing), so a slot torn by two writers reads as a miss. The key is the
//! address together with the four bytes of code that end at it (the call instruction's, for a
//! return address), so code unloaded with `dlclose` and replaced by other code at the same address
//! does not inherit the old code's rules.
//!
//! Where it stops (the sample gets a shorter stack, never a wrong one): a CFA given by a DWARF
//! expression or by another register (signal trampolines, PLT entries, stack realignment), rbp
//! or the return address kept by an expression or in another register, a return address marked
//! undefined (the outermost frame, `_start` or `clone`), no FDE (code without CFI, JIT code),
//! frames larger than 1 MiB, and any step that does not move up the stack. Every word it reads
//! from the stack lies between the frame's stack pointer and its CFA.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// libgcc's `struct dwarf_eh_bases`: what `_Unwind_Find_FDE` reports besides the FDE.
#[repr(C)]
struct EhBases {
    tbase: *mut c_void,
    dbase: *mut c_void,
    func: *mut c_void,
}

#[link(name = "gcc_s")]
extern "C" {
    /// The FDE that covers `pc`, or null; fills `bases` (`func`: the start of its code).
    fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut EhBases) -> *const u8;
}

/// DWARF register numbers of x86-64.
const RBP: u64 = 6;
const RSP: u64 = 7;

/// The largest frame followed (also the largest CFA offset a rule holds).
const MAX_FRAME: usize = 1 << 20;

/// Where a frame's caller state is, as the frame's CFI gives it at one address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Rule {
    /// The CFA is rbp + `cfa_offset` (else rsp + `cfa_offset`).
    cfa_rbp: bool,
    /// Below `MAX_FRAME`.
    cfa_offset: u32,
    /// The caller's rbp is saved at CFA - 8 * `rbp_slot` (0: rbp is unchanged). Below 32.
    rbp_slot: u8,
    /// The return address is saved at CFA - 8 * `ra_slot`; 0: there is no caller to go to.
    /// Below 32.
    ra_slot: u8,
}

impl Rule {
    /// The rule of a frame the walk does not go past.
    const STOP: Rule = Rule {
        cfa_rbp: false,
        cfa_offset: 0,
        rbp_slot: 0,
        ra_slot: 0,
    };

    const VALID: u32 = 1 << 31;

    /// 20 bits of offset, one of base, five and five of slots, one that says "a rule".
    fn pack(self) -> u32 {
        debug_assert!((self.cfa_offset as usize) < MAX_FRAME);
        debug_assert!(self.rbp_slot < 32 && self.ra_slot < 32);
        self.cfa_offset
            | (self.cfa_rbp as u32) << 20
            | (self.rbp_slot as u32) << 21
            | (self.ra_slot as u32) << 26
            | Self::VALID
    }

    fn unpack(v: u32) -> Rule {
        Rule {
            cfa_offset: v & (MAX_FRAME as u32 - 1),
            cfa_rbp: v >> 20 & 1 != 0,
            rbp_slot: (v >> 21 & 31) as u8,
            ra_slot: (v >> 26 & 31) as u8,
        }
    }
}

/// One slot of the rule table: `check == key ^ value`.
struct Slot {
    check: AtomicU64,
    value: AtomicU64,
}

const SLOTS: usize = 4096;

static RULES: [Slot; SLOTS] = [const {
    Slot {
        check: AtomicU64::new(0),
        value: AtomicU64::new(0),
    }
}; SLOTS];

/// The table key of `pc` (with the code before it, `code`) and its slot.
#[inline]
fn key_of(pc: usize, code: u32) -> (u64, usize) {
    let key = (pc as u64) ^ (code as u64).rotate_left(40);
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (key, (h >> 52) as usize % SLOTS)
}

/// The value stored for `rule` under `key`: the rule, and 32 bits of the key's hash, so that a
/// torn slot also has to match a hash to read as a hit.
#[inline]
fn value_of(key: u64, rule: u32) -> u64 {
    let h = key.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (h & 0xFFFF_FFFF_0000_0000) | rule as u64
}

fn lookup(key: u64, slot: usize) -> Option<Rule> {
    let s = &RULES[slot];
    let value = s.value.load(Ordering::Relaxed);
    let check = s.check.load(Ordering::Relaxed);
    let rule = value as u32;
    if check ^ value != key || value != value_of(key, rule) || rule & Rule::VALID == 0 {
        return None;
    }
    Some(Rule::unpack(rule))
}

fn remember(key: u64, slot: usize, rule: Rule) {
    let value = value_of(key, rule.pack());
    let s = &RULES[slot];
    s.value.store(value, Ordering::Relaxed);
    s.check.store(key ^ value, Ordering::Relaxed);
}

/// The rule of the frame executing at `pc` (an exact address: subtract one from a return
/// address first, so that it falls in the call instruction's range).
///
/// # Safety
/// `pc` is an address of mapped code (the current frame's, or a return address read from
/// the stack by [`walk`], less one): the four bytes that end at it are read.
unsafe fn rule_at(pc: usize) -> Rule {
    // SAFETY: per the contract; code is readable on x86-64 Linux (ELF text is never mapped
    // execute-only), and the three bytes before `pc` are the rest of its call instruction
    // (at least two bytes long) or code before it in the same mapping.
    let code = unsafe { ptr::read_unaligned((pc - 3) as *const u32) };
    let (key, slot) = key_of(pc, code);
    if let Some(rule) = lookup(key, slot) {
        return rule;
    }
    // SAFETY: per the contract.
    let rule = unsafe { find_rule(pc) };
    remember(key, slot, rule);
    rule
}

/// Runs the CFI of the FDE that covers `pc` up to `pc`.
#[cold]
#[inline(never)]
unsafe fn find_rule(pc: usize) -> Rule {
    let mut bases = EhBases {
        tbase: ptr::null_mut(),
        dbase: ptr::null_mut(),
        func: ptr::null_mut(),
    };
    // SAFETY: libgcc's lookup only reads the loader's tables; `bases` is ours.
    let fde = unsafe { _Unwind_Find_FDE(pc as *mut c_void, &mut bases) };
    if fde.is_null() {
        return Rule::STOP;
    }
    // SAFETY: `fde` is an FDE of a loaded object's `.eh_frame`, which stays mapped while the
    // object's code runs; every read below stays inside its record or its CIE's.
    unsafe { interpret(fde, &bases, pc) }.unwrap_or(Rule::STOP)
}

/// A bounded reader of one CFI record.
struct Cursor {
    at: usize,
    end: usize,
}

impl Cursor {
    /// # Safety (of every read)
    /// `at..end` is readable memory.
    fn take<T: Copy>(&mut self) -> Option<T> {
        let n = core::mem::size_of::<T>();
        if self.end - self.at < n {
            return None;
        }
        // SAFETY: in bounds of the record (checked above), which the constructor vouched for.
        let v = unsafe { ptr::read_unaligned(self.at as *const T) };
        self.at += n;
        Some(v)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<u8>()
    }

    /// A LEB128 number's bits, how many bits it had, and its last byte.
    fn leb(&mut self) -> Option<(u64, u32, u8)> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some((v, shift, b));
            }
        }
    }

    fn uleb(&mut self) -> Option<u64> {
        self.leb().map(|(v, _, _)| v)
    }

    fn sleb(&mut self) -> Option<i64> {
        let (v, shift, last) = self.leb()?;
        // The sign bit of the last byte extends over the bits above it.
        let v = if shift < 64 && last & 0x40 != 0 {
            v | u64::MAX << shift
        } else {
            v
        };
        Some(v as i64)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        if ((self.end - self.at) as u64) < n {
            return None;
        }
        self.at += n as usize;
        Some(())
    }

    /// A pointer in the `DW_EH_PE_*` encoding `enc` (indirect and aligned ones are refused).
    fn encoded(&mut self, enc: u8, bases: &EhBases) -> Option<usize> {
        let field = self.at;
        let raw = match enc & 0x0f {
            0x00 => self.take::<u64>()? as usize,
            0x01 => self.uleb()? as usize,
            0x02 => self.take::<u16>()? as usize,
            0x03 => self.take::<u32>()? as usize,
            0x04 => self.take::<u64>()? as usize,
            0x09 => self.sleb()? as usize,
            0x0a => self.take::<i16>()? as isize as usize,
            0x0b => self.take::<i32>()? as isize as usize,
            0x0c => self.take::<i64>()? as usize,
            _ => return None,
        };
        let base = match enc & 0x70 {
            0x00 => 0,
            0x10 => field,
            0x20 => bases.tbase as usize,
            0x30 => bases.dbase as usize,
            0x40 => bases.func as usize,
            _ => return None,
        };
        if enc & 0x80 != 0 {
            return None;
        }
        Some(base.wrapping_add(raw))
    }
}

/// Where a register of the caller is, in one row of the CFI table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Saved {
    /// Unchanged from this frame (also "same value").
    Same,
    /// Not recoverable (the return address of the outermost frame).
    Undefined,
    /// In memory at CFA + the offset.
    At(i64),
    /// Anywhere else (another register, an expression): not followed.
    Elsewhere,
}

/// The part of a CFI row the walk uses.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// The CFA's register and offset; `None` when it is an expression.
    cfa: Option<(u64, i64)>,
    rbp: Saved,
    ra: Saved,
}

/// What a CIE says for the FDEs under it.
struct Cie {
    code_align: u64,
    data_align: i64,
    ra_reg: u64,
    fde_enc: u8,
    has_aug_data: bool,
    initial: Row,
}

/// The state of a CFI program being run.
struct Program<'a> {
    cie: &'a Cie,
    bases: &'a EhBases,
    row: Row,
    saved: [Row; 8],
    depth: usize,
}

impl<'a> Program<'a> {
    /// A program starting from the CIE's initial row.
    fn new(cie: &'a Cie, bases: &'a EhBases) -> Self {
        Program {
            cie,
            bases,
            row: cie.initial,
            saved: [cie.initial; 8],
            depth: 0,
        }
    }

    /// Sets the caller's `reg` to `s` (registers other than rbp and the return address are
    /// not tracked).
    fn set(&mut self, reg: u64, s: Saved) {
        if reg == RBP {
            self.row.rbp = s;
        } else if reg == self.cie.ra_reg {
            self.row.ra = s;
        }
    }

    fn restore(&mut self, reg: u64) {
        let init = self.cie.initial;
        if reg == RBP {
            self.row.rbp = init.rbp;
        } else if reg == self.cie.ra_reg {
            self.row.ra = init.ra;
        }
    }

    /// Runs the instructions of `c` while the location stays at or below `target`, starting
    /// at `loc`, and returns the row reached; `None` on an instruction it does not know.
    fn run(mut self, c: &mut Cursor, loc: usize, target: usize) -> Option<Row> {
        self.steps(c, loc, target)?;
        Some(self.row)
    }

    fn steps(&mut self, c: &mut Cursor, mut loc: usize, target: usize) -> Option<()> {
        let data = self.cie.data_align;
        let code = self.cie.code_align as usize;
        while c.at < c.end {
            let op = c.u8()?;
            let mut advance = None;
            match op >> 6 {
                1 => advance = Some((op & 0x3f) as usize * code),
                2 => {
                    let off = c.uleb()? as i64 * data;
                    self.set((op & 0x3f) as u64, Saved::At(off));
                }
                3 => self.restore((op & 0x3f) as u64),
                _ => match op {
                    0x00 => {}
                    0x01 => {
                        let to = c.encoded(self.cie.fde_enc, self.bases)?;
                        if to > target {
                            return Some(());
                        }
                        loc = to;
                    }
                    0x02 => advance = Some(c.u8()? as usize * code),
                    0x03 => advance = Some(c.take::<u16>()? as usize * code),
                    0x04 => advance = Some(c.take::<u32>()? as usize * code),
                    0x05 => {
                        let reg = c.uleb()?;
                        let off = c.uleb()? as i64 * data;
                        self.set(reg, Saved::At(off));
                    }
                    0x06 => {
                        let reg = c.uleb()?;
                        self.restore(reg);
                    }
                    0x07 => {
                        let reg = c.uleb()?;
                        self.set(reg, Saved::Undefined);
                    }
                    0x08 => {
                        let reg = c.uleb()?;
                        self.set(reg, Saved::Same);
                    }
                    // register, val_offset, val_offset_sf: the caller's value is not in
                    // memory. Their second operand (a register or an offset) is one LEB128,
                    // skipped the same way signed or not.
                    0x09 | 0x14 | 0x15 => {
                        let reg = c.uleb()?;
                        c.uleb()?;
                        self.set(reg, Saved::Elsewhere);
                    }
                    0x0a => {
                        if self.depth == self.saved.len() {
                            return None;
                        }
                        self.saved[self.depth] = self.row;
                        self.depth += 1;
                    }
                    0x0b => {
                        // The CFA comes back with the registers, as in libgcc (compilers emit
                        // `remember_state; def_cfa_offset 8; ret; restore_state` around an
                        // epilogue in the middle of a function).
                        if self.depth == 0 {
                            return None;
                        }
                        self.depth -= 1;
                        self.row = self.saved[self.depth];
                    }
                    0x0c => {
                        let reg = c.uleb()?;
                        let off = c.uleb()? as i64;
                        self.row.cfa = Some((reg, off));
                    }
                    0x0d => {
                        let reg = c.uleb()?;
                        self.row.cfa = self.row.cfa.map(|(_, off)| (reg, off));
                    }
                    0x0e => {
                        let off = c.uleb()? as i64;
                        self.row.cfa = self.row.cfa.map(|(reg, _)| (reg, off));
                    }
                    0x0f => {
                        let len = c.uleb()?;
                        c.skip(len)?;
                        self.row.cfa = None;
                    }
                    0x10 | 0x16 => {
                        let reg = c.uleb()?;
                        let len = c.uleb()?;
                        c.skip(len)?;
                        self.set(reg, Saved::Elsewhere);
                    }
                    0x11 => {
                        let reg = c.uleb()?;
                        let off = c.sleb()? * data;
                        self.set(reg, Saved::At(off));
                    }
                    0x12 => {
                        let reg = c.uleb()?;
                        let off = c.sleb()? * data;
                        self.row.cfa = Some((reg, off));
                    }
                    0x13 => {
                        let off = c.sleb()? * data;
                        self.row.cfa = self.row.cfa.map(|(reg, _)| (reg, off));
                    }
                    0x2e => {
                        c.uleb()?;
                    }
                    0x2f => {
                        let reg = c.uleb()?;
                        let off = -(c.uleb()? as i64) * data;
                        self.set(reg, Saved::At(off));
                    }
                    _ => return None,
                },
            }
            if let Some(delta) = advance {
                if loc + delta > target {
                    return Some(());
                }
                loc += delta;
            }
        }
        Some(())
    }
}

/// The length field of a CFI record at `at`: the record's end, and where its body starts.
///
/// # Safety
/// `at` is the start of a CFI record in a loaded `.eh_frame`.
unsafe fn record(at: usize) -> Option<Cursor> {
    // SAFETY: per the contract, a record starts with a four-byte length.
    let len = unsafe { ptr::read_unaligned(at as *const u32) };
    // 64-bit records (0xffffffff) do not occur in `.eh_frame` on x86-64; 0 is a terminator.
    if len == 0 || len == u32::MAX {
        return None;
    }
    Some(Cursor {
        at: at + 4,
        end: at + 4 + len as usize,
    })
}

/// Parses the CIE at `at`.
///
/// # Safety
/// As for [`record`].
unsafe fn parse_cie(at: usize, bases: &EhBases) -> Option<Cie> {
    // SAFETY: per the contract.
    let mut c = unsafe { record(at) }?;
    if c.take::<u32>()? != 0 {
        return None;
    }
    let version = c.u8()?;
    let mut aug = [0u8; 8];
    let mut n = 0;
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        if n == aug.len() {
            return None;
        }
        aug[n] = b;
        n += 1;
    }
    let aug = &aug[..n];
    let code_align = c.uleb()?;
    let data_align = c.sleb()?;
    let ra_reg = if version == 1 {
        c.u8()? as u64
    } else {
        c.uleb()?
    };
    let mut fde_enc = 0u8; // DW_EH_PE_absptr
    let has_aug_data = aug.first() == Some(&b'z');
    if has_aug_data {
        let len = c.uleb()?;
        let data_end = c.at.checked_add(len as usize)?;
        if data_end > c.end {
            return None;
        }
        for &ch in &aug[1..] {
            match ch {
                b'R' => fde_enc = c.u8()?,
                b'P' => {
                    let enc = c.u8()?;
                    c.encoded(enc & 0x7f, bases)?;
                }
                b'L' => {
                    c.u8()?;
                }
                b'S' | b'B' | b'G' => {}
                _ => break,
            }
        }
        c.at = data_end;
    } else if !aug.is_empty() {
        return None;
    }
    let mut cie = Cie {
        code_align,
        data_align,
        ra_reg,
        fde_enc,
        has_aug_data,
        initial: Row {
            cfa: None,
            rbp: Saved::Same,
            ra: Saved::Same,
        },
    };
    cie.initial = Program::new(&cie, bases).run(&mut c, 0, usize::MAX)?;
    Some(cie)
}

/// Runs the CIE's and the FDE's programs up to `pc` and turns the row into a rule.
///
/// # Safety
/// `fde` is an FDE in a loaded `.eh_frame`; `bases` is what libgcc reported with it.
unsafe fn interpret(fde: *const u8, bases: &EhBases, pc: usize) -> Option<Rule> {
    let at = fde as usize;
    // SAFETY: per the contract.
    let mut c = unsafe { record(at) }?;
    let cie_field = c.at;
    let cie_off = c.take::<u32>()? as usize;
    // SAFETY: an FDE's CIE pointer is the distance back from its own field to its CIE.
    let cie = unsafe { parse_cie(cie_field.checked_sub(cie_off)?, bases) }?;
    let start = c.encoded(cie.fde_enc, bases)?;
    let range = c.encoded(cie.fde_enc & 0x0f, bases)?;
    if pc < start || pc - start >= range {
        return None;
    }
    if cie.has_aug_data {
        let len = c.uleb()?;
        c.skip(len)?;
    }
    let row = Program::new(&cie, bases).run(&mut c, start, pc)?;
    Some(rule_of(&row))
}

/// The rule a CFI row gives, or [`Rule::STOP`] for a row the walk does not follow.
fn rule_of(row: &Row) -> Rule {
    let slot = |s: Saved| match s {
        Saved::At(off) if off < 0 && off % 8 == 0 && -off / 8 < 32 => Some((-off / 8) as u8),
        _ => None,
    };
    let Some((reg, off)) = row.cfa else {
        return Rule::STOP;
    };
    if (reg != RSP && reg != RBP) || off < 8 || off as usize >= MAX_FRAME {
        return Rule::STOP;
    }
    let Some(ra_slot) = slot(row.ra) else {
        return Rule::STOP;
    };
    let rbp_slot = match row.rbp {
        Saved::Same => 0,
        s => match slot(s) {
            Some(n) => n,
            None => return Rule::STOP,
        },
    };
    Rule {
        cfa_rbp: reg == RBP,
        cfa_offset: off as u32,
        rbp_slot,
        ra_slot,
    }
}

/// Fills `out` with the calling thread's stack, innermost first: an address in this function,
/// then return addresses. Returns how many it wrote.
#[inline(never)]
pub(crate) fn walk(out: &mut [usize]) -> usize {
    let (mut ip, mut sp, mut bp): (usize, usize, usize);
    // SAFETY: reads three registers; the address is that of the next instruction, which runs
    // with the stack pointer read here.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    let mut n = 0;
    // The innermost frame's address is exact; a return address is looked up one byte back, in
    // its call instruction.
    let mut pc = ip;
    while n < out.len() {
        out[n] = ip;
        n += 1;
        // SAFETY: `pc` is in this function or one byte back from a return address found by
        // the previous frame's rule: code of the running program.
        let rule = unsafe { rule_at(pc) };
        if rule.ra_slot == 0 {
            break;
        }
        let base = if rule.cfa_rbp { bp } else { sp };
        let cfa = base.wrapping_add(rule.cfa_offset as usize);
        if cfa <= sp || cfa - sp > MAX_FRAME || cfa % 8 != 0 {
            break;
        }
        let ra_at = cfa - 8 * rule.ra_slot as usize;
        let bp_at = cfa - 8 * rule.rbp_slot as usize;
        if ra_at < sp || (rule.rbp_slot != 0 && bp_at < sp) {
            break;
        }
        // SAFETY: both words lie in this frame, between its stack pointer and its CFA, on the
        // stack of the running thread.
        unsafe {
            ip = ptr::read(ra_at as *const usize);
            if rule.rbp_slot != 0 {
                bp = ptr::read(bp_at as *const usize);
            }
        }
        sp = cfa;
        if ip < 4096 {
            break;
        }
        pc = ip - 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pack_and_unpack() {
        for rule in [
            Rule::STOP,
            Rule {
                cfa_rbp: true,
                cfa_offset: 16,
                rbp_slot: 2,
                ra_slot: 1,
            },
            Rule {
                cfa_rbp: false,
                cfa_offset: MAX_FRAME as u32 - 8,
                rbp_slot: 31,
                ra_slot: 31,
            },
        ] {
            assert_eq!(Rule::unpack(rule.pack()), rule);
        }
    }

    #[test]
    fn a_torn_slot_reads_as_a_miss() {
        let rule = Rule {
            cfa_rbp: false,
            cfa_offset: 8,
            rbp_slot: 0,
            ra_slot: 1,
        };
        let (a, slot) = key_of(0x5555_0000_1234, 0xe8);
        remember(a, slot, rule);
        assert_eq!(lookup(a, slot), Some(rule));
        // Another key's value with this key's check word: what a reader sees between the
        // two stores of another writer.
        let b = a ^ (1 << 44);
        let other = value_of(b, rule.pack());
        RULES[slot].value.store(other, Ordering::Relaxed);
        assert_eq!(lookup(a, slot), None);
        assert_eq!(lookup(b, slot), None);
    }

    #[test]
    fn leb128_reads_as_dwarf_says() {
        // DWARF 5, 7.6: examples of unsigned and signed LEB128.
        let bytes = [0x02u8, 0x7f, 0x80, 0x01, 0xe5, 0x8e, 0x26, 0x7e, 0x80, 0x7f];
        let mut c = Cursor {
            at: bytes.as_ptr() as usize,
            end: bytes.as_ptr() as usize + bytes.len(),
        };
        assert_eq!(c.uleb(), Some(2));
        assert_eq!(c.uleb(), Some(127));
        assert_eq!(c.uleb(), Some(128));
        assert_eq!(c.uleb(), Some(624_485));
        assert_eq!(c.sleb(), Some(-2));
        assert_eq!(c.sleb(), Some(-128));
        assert_eq!(c.u8(), None);
    }

    #[test]
    fn rows_the_walk_cannot_follow_stop_it() {
        let row = |cfa, rbp, ra| rule_of(&Row { cfa, rbp, ra });
        assert_eq!(row(None, Saved::Same, Saved::At(-8)), Rule::STOP);
        assert_eq!(row(Some((10, 8)), Saved::Same, Saved::At(-8)), Rule::STOP);
        assert_eq!(
            row(Some((RSP, 8)), Saved::Same, Saved::Undefined),
            Rule::STOP
        );
        assert_eq!(
            row(Some((RSP, 8)), Saved::Elsewhere, Saved::At(-8)),
            Rule::STOP
        );
        assert_eq!(row(Some((RSP, 8)), Saved::Same, Saved::At(-12)), Rule::STOP);
        assert_eq!(
            row(Some((RBP, 16)), Saved::At(-16), Saved::At(-8)),
            Rule {
                cfa_rbp: true,
                cfa_offset: 16,
                rbp_slot: 2,
                ra_slot: 1,
            }
        );
    }
}
